"""Redpill through the adapter core: the verifier's own TEE rule, the shared-verifier check, and
the per-call request fields (sent, and captured byte for byte), over a real RedpillVerifier and
``httpx.MockTransport``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

import redpill_integrations._adapter.core as core
from redpill_integrations import ReceiptStore, RedpillVerifier
from redpill_integrations.errors import ConfigurationError, VerificationFailed
from redpill_integrations.llama_index import VERIFICATION_KEY, Redpill
from redpill_integrations.results import Reason
from tests.support import FakeTime
from tests.unit.langchain.test_chat_model import Server, completion, sse

from .conftest import BASE, KEY, MODEL, FakeVerifier

MSGS = [ChatMessage(role="user", content="hi")]


def _verifier(server: Server, **kwargs: Any) -> RedpillVerifier:
    clock = FakeTime()
    return RedpillVerifier(
        base_url=BASE,
        api_key=KEY,
        transport=httpx.MockTransport(server),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        **kwargs,
    )


def _llm(server: Server, verifier: RedpillVerifier, **kwargs: Any) -> Redpill:
    return Redpill(
        model=kwargs.pop("model", MODEL),
        api_key=KEY,
        api_base=BASE,
        verifier=verifier,
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(server)),
        **kwargs,
    )


def test_strict_precheck_asks_the_verifier_for_its_tee_models() -> None:
    server = Server(lambda _r: httpx.Response(200, json={**completion(), "model": "acme/m"}))
    custom = _verifier(server, tee_model_prefixes=("acme/",))
    response = _llm(server, custom, model="acme/m", verification="annotate").chat(MSGS)
    assert response.additional_kwargs[VERIFICATION_KEY]["reasons"] == ["SIGNATURE_UNAVAILABLE"]
    with pytest.raises(VerificationFailed):  # strict sends it too (and finds no signature)
        _llm(server, custom, model="acme/m").chat(MSGS)
    chats = len([r for r in server.requests if r.url.path.endswith("/chat/completions")])
    refused = _llm(server, custom, model=MODEL)  # built: knowing the gateway takes a request
    with pytest.raises(ConfigurationError) as err:
        refused.chat(MSGS)
    assert err.value.reason is Reason.MODEL_NOT_TEE and "acme/…" in str(err.value)
    assert len([r for r in server.requests if r.url.path.endswith("/chat/completions")]) == chats


def test_a_shared_verifier_must_serve_the_models_base_url(fake: FakeVerifier) -> None:
    with pytest.raises(ConfigurationError, match="base_url differs"):
        Redpill(model=MODEL, api_key=KEY, api_base="https://elsewhere.test/v1", verifier=fake)  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True])
def test_request_fields_are_sent_and_captured_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stream: bool
) -> None:
    def fields(verifier: RedpillVerifier, mode: str) -> dict[str, Any]:
        return {"provider": {"aci_verified": True}} if mode == "strict" else {}

    monkeypatch.setattr(core, "request_fields", fields)

    def reply(_r: httpx.Request) -> httpx.Response:
        if stream:
            body = sse({"content": "a"}, {"content": "b"})
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(200, json=completion())

    server = Server(reply)
    store = ReceiptStore(tmp_path / "r.sqlite3")
    verifier = _verifier(server, receipt_store=store)
    extra = {"additional_kwargs": {"extra_body": {"user_x": 1}}}
    annotate = _llm(server, verifier, verification="annotate", **extra)
    strict = _llm(server, verifier, **extra)
    if stream:
        list(annotate.stream_chat(MSGS))
        with pytest.raises(VerificationFailed):
            list(strict.stream_chat(MSGS))
    else:
        annotate.chat(MSGS)
        with pytest.raises(VerificationFailed):
            strict.chat(MSGS)
    sent = [r for r in server.requests if r.url.path.endswith("/chat/completions")]
    bodies = [json.loads(r.content) for r in sent]
    assert [b.get("provider") for b in bodies] == [None, {"aci_verified": True}]
    assert [b["user_x"] for b in bodies] == [1, 1]  # the user's own extra_body is kept
    captured = sorted(r.request_body for r in store.list() if r.request_body is not None)
    assert captured == sorted(r.content for r in sent)
