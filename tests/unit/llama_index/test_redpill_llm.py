"""The Redpill LLM's own logic, against a scripted verifier (see conftest.py): settings, secrets,
modes, the trailing stream response, header merging and one event per call."""

from __future__ import annotations

import logging

import pytest
from llama_index.core.base.llms.types import ChatMessage

from redpill_integrations.emulator import Reply
from redpill_integrations.errors import ConfigurationError, VerificationFailed
from redpill_integrations.llama_index import VERIFICATION_KEY, Redpill, RedpillVerificationEvent
from redpill_integrations.results import Reason
from redpill_integrations.wire import CAPTURE_HEADER

from .conftest import BASE, KEY, MODEL, Collector, FakeVerifier

MSGS = [ChatMessage(role="user", content="hi")]


def make(fake: FakeVerifier, **kwargs: object) -> Redpill:
    return Redpill(
        model=kwargs.pop("model", MODEL), api_key=KEY, api_base=BASE, verifier=fake, **kwargs
    )  # type: ignore[arg-type]


def test_metadata_and_class_name(fake: FakeVerifier) -> None:
    llm = make(fake)
    assert Redpill.class_name() == "Redpill"
    meta = llm.metadata
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.context_window == 163_840
    assert make(fake, model="phala/some-new-model").metadata.context_window == 32_768
    assert make(fake, context_window=1000).metadata.context_window == 1000


def test_settings_from_env_and_openai_env_ignored(
    fake: FakeVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDPILL_API_KEY", KEY)
    monkeypatch.setenv("REDPILL_BASE_URL", BASE)
    for name, value in {
        "OPENAI_API_KEY": "sk-openai-secret",
        "OPENAI_BASE_URL": "https://api.openai.com/v1",
        "OPENAI_API_BASE": "https://api.openai.com/v1",
        "OPENAI_ORG_ID": "org-secret",
        "OPENAI_PROJECT_ID": "proj-secret",
        "OPENAI_CUSTOM_HEADERS": "X-Leak: openai-secret",
    }.items():
        monkeypatch.setenv(name, value)
    llm = Redpill(model=MODEL, verifier=fake)  # type: ignore[arg-type]
    assert llm.api_base == BASE and llm.api_key == KEY
    llm.chat(MSGS)
    (request,) = fake.requests
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    sent = " ".join(f"{k}: {v}" for k, v in request.headers.items())
    assert "secret" not in sent and "openai-organization" not in request.headers


def test_configuration_errors(fake: FakeVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDPILL_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    with pytest.raises(ConfigurationError, match="REDPILL_API_KEY"):
        Redpill(model=MODEL, verifier=fake)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="verification must be"):
        make(fake, verification="lenient")
    with pytest.raises(ConfigurationError) as info:
        make(fake, model="openai/gpt-4o-mini").chat(MSGS)  # refused at the call, not before
    assert info.value.reason is Reason.MODEL_NOT_TEE and fake.requests == []
    assert 'verification="off"' in str(info.value)
    with pytest.raises(ConfigurationError, match="reuse_client"):
        make(fake, reuse_client=False)
    with pytest.raises(ConfigurationError, match="temperature") as bad:
        make(fake, temperature=7.0)
    assert KEY not in str(bad.value)


def test_api_key_never_shown_or_serialised(fake: FakeVerifier) -> None:
    llm = make(fake)
    for text in (repr(llm), str(llm), llm.to_json(), str(llm.to_dict()), str(llm.to_payload())):
        assert KEY not in text


def test_strict_verified_chat_carries_verdict_and_one_event(
    fake: FakeVerifier, collector: Collector
) -> None:
    response = make(fake).chat(MSGS)
    verdict = response.additional_kwargs[VERIFICATION_KEY]
    assert verdict["status"] == "verified" and verdict["chat_id"] == "chatcmpl-unit1"
    (event,) = collector.named("RedpillVerificationEvent")
    assert isinstance(event, RedpillVerificationEvent)
    assert event.verification == verdict and event.mode == "strict" and event.delivered
    (start,) = collector.named("LLMChatStartEvent")
    assert event.span_id is not None and event.span_id == start.span_id


def test_strict_failure_raises_with_the_whole_response(fake: FakeVerifier) -> None:
    fake.reasons = [Reason.SIGNATURE_INVALID]
    fake.replies = [Reply.text("the full answer")]
    with pytest.raises(VerificationFailed) as info:
        make(fake).chat(MSGS)
    assert info.value.result.reasons == (Reason.SIGNATURE_INVALID,)
    assert info.value.response.message.content == "the full answer"
    assert info.value.response.additional_kwargs[VERIFICATION_KEY]["status"] == "failed"


def test_annotate_returns_and_warns(fake: FakeVerifier, caplog: pytest.LogCaptureFixture) -> None:
    fake.reasons = [Reason.SIGNATURE_UNAVAILABLE]
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        response = make(fake, verification="annotate").complete("hi")
    verdict = response.additional_kwargs[VERIFICATION_KEY]
    assert verdict["status"] == "unverifiable" and verdict["reasons"] == ["SIGNATURE_UNAVAILABLE"]
    assert "SIGNATURE_UNAVAILABLE" in caplog.text and KEY not in caplog.text


def test_off_is_a_plain_client(fake: FakeVerifier, collector: Collector) -> None:
    # off: the user's http client is the SDK's, with no capture around it
    llm = make(fake, verification="off", model="openai/gpt-4o-mini", http_client=fake.http_client())
    assert llm.verifier is None
    response = llm.chat(MSGS)
    assert VERIFICATION_KEY not in response.additional_kwargs
    assert CAPTURE_HEADER not in fake.requests[0].headers
    assert fake.verified == [] and collector.named("RedpillVerificationEvent") == []


def test_strict_refuses_per_call_non_tee_model(fake: FakeVerifier) -> None:
    with pytest.raises(ConfigurationError) as info:
        make(fake).chat(MSGS, model="openai/gpt-4o-mini")
    assert info.value.reason is Reason.MODEL_NOT_TEE and fake.requests == []


def test_extra_headers_merged_with_capture_tag(fake: FakeVerifier) -> None:
    llm = make(fake, additional_kwargs={"extra_headers": {"X-Team": "a"}})
    llm.chat(MSGS, extra_headers={"X-Call": "b"})
    headers = fake.requests[0].headers
    assert headers["x-team"] == "a" and headers["x-call"] == "b"
    assert headers[CAPTURE_HEADER] == "tag-1"


def test_stream_ends_with_one_verdict_response(fake: FakeVerifier, collector: Collector) -> None:
    fake.replies = [Reply.text("a streamed answer that spans several chunks")]
    chunks = list(make(fake).stream_chat(MSGS))
    carrying = [c for c in chunks if VERIFICATION_KEY in c.additional_kwargs]
    assert carrying == [chunks[-1]] and chunks[-1].delta == ""
    assert chunks[-1].message.content == "a streamed answer that spans several chunks"
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].message.content
    assert len(collector.named("RedpillVerificationEvent")) == 1
    (end,) = collector.named("LLMChatEndEvent")
    assert end.response is chunks[-1]


def test_strict_stream_failure_raises_after_last_delta(fake: FakeVerifier) -> None:
    fake.reasons = [Reason.RESPONSE_HASH_MISMATCH]
    fake.replies = [Reply.text("every word of this reply")]
    received: list[str] = []
    with pytest.raises(VerificationFailed) as info:
        for chunk in make(fake).stream_complete("hi"):
            received.append(chunk.delta or "")
    assert "".join(received) == "every word of this reply"
    assert info.value.response.message.content == "every word of this reply"


async def test_async_stream_and_legacy_completions_refused(fake: FakeVerifier) -> None:
    llm = make(fake)
    chunks = [c async for c in await llm.astream_chat(MSGS)]
    assert chunks[-1].additional_kwargs[VERIFICATION_KEY]["status"] == "verified"
    with pytest.raises(ConfigurationError, match="chat completions only"):
        await llm.acomplete("hi", use_chat_completions=False)


def test_public_names_are_pinned() -> None:
    import redpill_integrations.llama_index as package

    assert sorted(package.__all__) == sorted(
        ["VERIFICATION_KEY", "Redpill", "RedpillVerificationEvent"]
    )
    assert VERIFICATION_KEY == "redpill_verification"
    assert RedpillVerificationEvent.class_name() == "RedpillVerificationEvent"
