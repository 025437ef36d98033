"""ChatRedpill offline: settings, env isolation, serialisation, modes, reasoning, capture wiring.

The "server" is an httpx.MockTransport handed in as the user's own http client; the verifier's own
fetch transport is a MockTransport too, so nothing leaves the process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.load import dumpd, dumps, load

from redpill_integrations import RedpillVerifier, TrustAnchors, VerificationPolicy
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.langchain import ChatRedpill
from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER
from tests.support import FakeTime

TEE = "phala/deepseek-chat-v3-0324"
NON_TEE = "openai/gpt-4o-mini"
KEY = "sk-redpill-CANARY-5d1e"
OPENAI_ENV = {
    "OPENAI_API_KEY": "sk-openai-LEAK",
    "OPENAI_BASE_URL": "https://openai.invalid/v1",
    "OPENAI_API_BASE": "https://openai-base.invalid/v1",
    "OPENAI_ORG_ID": "org-LEAK",
    "OPENAI_ORGANIZATION": "org-LEAK2",
    "OPENAI_PROJECT_ID": "proj-LEAK",
    "OPENAI_ADMIN_KEY": "sk-admin-LEAK",
    "OPENAI_WEBHOOK_SECRET": "whsec-LEAK",
    "OPENAI_CUSTOM_HEADERS": "X-Leak: yes",
    "OPENAI_PROXY": "http://proxy.invalid:3128",
}


def completion(content: str = "hi", **message_extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-unit-1",
        "object": "chat.completion",
        "created": 1,
        "model": TEE,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message_extra},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def sse(*deltas: dict[str, Any]) -> bytes:
    events = [
        {
            "id": "chatcmpl-unit-2",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": TEE,
            "choices": [{"index": 0, "delta": d, "finish_reason": None}],
        }
        for d in deltas
    ]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


class Server:
    """Records every request; answers chat with ``reply`` and everything else with 404."""

    def __init__(self, reply: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.reply = reply or (lambda _req: httpx.Response(200, json=completion()))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/chat/completions"):
            return self.reply(request)
        return httpx.Response(404, json={"error": {"message": "Chat id not found or expired"}})


def model(server: Server, **kwargs: Any) -> ChatRedpill:
    kwargs.setdefault("model", TEE)
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("max_retries", 0)
    if kwargs.get("verification", "strict") != "off":
        clock = FakeTime()
        kwargs.setdefault(
            "verifier",
            RedpillVerifier(
                base_url=kwargs.get("base_url", "https://api.redpill.ai/v1"),
                api_key=KEY,
                policy=kwargs.get("policy"),
                transport=httpx.MockTransport(server),
                sleep=clock.sleep,
                monotonic=clock.monotonic,
            ),
        )
    return ChatRedpill(http_client=httpx.Client(transport=httpx.MockTransport(server)), **kwargs)


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OPENAI_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDPILL_API_KEY", KEY)
    monkeypatch.delenv("REDPILL_BASE_URL", raising=False)


@pytest.mark.parametrize("verification", ["off", "annotate"])
def test_openai_environment_never_reaches_the_request(openai_env: None, verification: str) -> None:
    server = Server()
    chat = ChatRedpill(
        model=NON_TEE if verification == "annotate" else TEE,
        verification=verification,  # type: ignore[arg-type]
        http_client=httpx.Client(transport=httpx.MockTransport(server)),
        max_retries=0,
    )
    chat.invoke("hello")
    (request,) = [r for r in server.requests if r.url.path.endswith("/chat/completions")]
    assert str(request.url) == "https://api.redpill.ai/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    leaked = [k for k in request.headers if k.lower().startswith("openai-") or k == "x-leak"]
    assert leaked == [] and CAPTURE_HEADER not in request.headers
    assert chat.openai_api_key is None and chat.openai_organization is None
    assert chat.openai_proxy is None and chat.openai_api_base is None


def test_settings_from_redpill_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDPILL_API_KEY", KEY)
    monkeypatch.setenv("REDPILL_BASE_URL", "https://redpill.example/v1")
    chat = ChatRedpill(model=TEE)
    assert chat.redpill_api_key is not None and chat.redpill_api_key.get_secret_value() == KEY
    assert str(chat.root_client.base_url) == "https://redpill.example/v1/"
    assert chat.verifier is not None and chat.verifier.base_url == "https://redpill.example/v1"
    assert KEY not in repr(chat) and KEY not in str(chat.verifier)


def test_public_names_are_pinned() -> None:
    import redpill_integrations.langchain as lc

    names = ["EVENT_NAME", "VERDICT_KEY", "ChatRedpill", "RedpillCallbackHandler"]
    assert sorted(lc.__all__) == sorted(names)
    assert lc.VERDICT_KEY == lc.EVENT_NAME == "redpill_verification"


def test_identity() -> None:
    chat = model(Server())
    assert chat._llm_type == "redpill-chat"
    assert chat._get_ls_params()["ls_provider"] == "redpill"
    assert chat.lc_secrets["redpill_api_key"] == "REDPILL_API_KEY"
    assert chat.lc_secrets["api_key"] == "REDPILL_API_KEY"
    assert chat.stream_usage is True and chat.verification == "strict"
    assert chat._use_responses_api({"reasoning": {"effort": "low"}}) is False


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_dumpd_loads_round_trip_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDPILL_API_KEY", raising=False)
    policy = VerificationPolicy(require_gpu=False, allowed_app_ids=["AbCd"], signature_deadline=5)
    trust = TrustAnchors(
        kind="test",
        pccs_url="http://127.0.0.1:1",
        nras_url="http://127.0.0.1:1/v3",
        nras_jwks_url="http://127.0.0.1:1/jwks",
        intel_root_ca_der=b"\x01\x02",
    )
    chat = ChatRedpill(model=TEE, api_key=KEY, verification="annotate", policy=policy, trust=trust)
    text = dumps(chat)
    assert KEY not in text
    assert dumpd(chat)["kwargs"]["redpill_api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["REDPILL_API_KEY"],
    }
    loaded = load(
        dumpd(chat),
        secrets_map={"REDPILL_API_KEY": KEY},
        allowed_objects=[ChatRedpill],
        valid_namespaces=["redpill_integrations"],
    )
    assert isinstance(loaded, ChatRedpill)
    assert loaded.asdict() == chat.asdict()
    assert loaded.policy == policy
    assert loaded.trust is not None and loaded.trust.to_dict() == trust.to_dict()
    assert loaded.verification == "annotate"
    assert loaded.redpill_api_key is not None and loaded.redpill_api_key.get_secret_value() == KEY


def test_model_not_tee_in_strict_mode_names_the_way_out_at_the_first_call() -> None:
    ChatRedpill(model=NON_TEE, api_key=KEY)  # construction sends nothing, so it cannot know
    server = Server()
    chat = model(server, model=NON_TEE)
    with pytest.raises(ConfigurationError) as err:
        chat.invoke("hello")
    assert err.value.reason is Reason.MODEL_NOT_TEE
    assert "MODEL_NOT_TEE" in str(err.value) and 'verification="off"' in str(err.value)
    assert not [r for r in server.requests if r.url.path.endswith("/chat/completions")]


def test_model_not_tee_per_call_override_raises_before_sending() -> None:
    server = Server()
    chat = model(server)
    with pytest.raises(ConfigurationError) as err:
        chat.invoke("hello", model=NON_TEE)
    assert err.value.reason is Reason.MODEL_NOT_TEE
    # only the gateway probe (``/v1/models``, then ``/``: a legacy gateway here); no chat
    assert [r.url.path for r in server.requests] == ["/v1/models", "/"]


def test_model_not_tee_annotate_is_unverifiable_without_fetch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server()
    msg = model(server, model=NON_TEE, verification="annotate").invoke("hello")
    verdict = msg.response_metadata["redpill_verification"]
    assert (verdict["status"], verdict["reasons"]) == ("unverifiable", ["MODEL_NOT_TEE"])
    assert [r.url.path for r in server.requests] == ["/v1/chat/completions"]
    assert any(
        r.name == "redpill_integrations" and "MODEL_NOT_TEE" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"api_key": ""}, "API key"),
        ({"use_responses_api": True}, "Chat Completions"),
        ({"openai_proxy": "http://proxy:1"}, "openai_proxy"),
        ({"n": 2, "streaming": True}, "n must be"),
    ],
)
def test_bad_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], needle: str
) -> None:
    monkeypatch.delenv("REDPILL_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=needle):
        ChatRedpill(**{"model": TEE, "api_key": KEY, **kwargs})


def test_own_client_cannot_bypass_capture() -> None:
    import openai

    sdk = openai.OpenAI(api_key=KEY, base_url="https://api.redpill.ai/v1")
    with pytest.raises(ConfigurationError, match="http_client"):
        ChatRedpill(model=TEE, api_key=KEY, client=sdk.chat.completions)


def test_verifier_excludes_its_own_settings_and_must_share_the_base_url() -> None:
    verifier = RedpillVerifier(base_url="https://api.redpill.ai/v1", api_key=KEY)
    with pytest.raises(ConfigurationError, match="policy"):
        ChatRedpill(model=TEE, api_key=KEY, verifier=verifier, policy=VerificationPolicy())
    with pytest.raises(ConfigurationError, match="base_url"):
        ChatRedpill(model=TEE, api_key=KEY, verifier=verifier, base_url="https://other.example/v1")
    assert ChatRedpill(model=TEE, api_key=KEY, verifier=verifier).verifier is verifier


def test_user_http_client_is_wrapped_and_exchange_captured() -> None:
    server = Server()
    chat = model(server, model=NON_TEE, verification="annotate")
    msg = chat.invoke("hello", extra_headers={"X-User": "kept"})
    (request,) = server.requests
    assert request.headers["x-user"] == "kept" and CAPTURE_HEADER not in request.headers
    verdict = msg.response_metadata["redpill_verification"]
    assert verdict["chat_id"] == "chatcmpl-unit-1"
    assert verdict["request_sha256"] == hashlib.sha256(request.content).hexdigest()
    assert len(chat.verifier.recorder) == 0  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:The `json` method is deprecated:DeprecationWarning")
def test_signature_unavailable_strict_raises_with_the_message() -> None:
    from redpill_integrations.errors import VerificationFailed

    chat = model(Server())
    with pytest.raises(VerificationFailed) as err:
        chat.invoke("hello")
    assert err.value.result.status is Status.UNVERIFIABLE
    assert err.value.result.reasons == (Reason.SIGNATURE_UNAVAILABLE,)
    assert err.value.response.content == "hi"
    assert err.value.response.response_metadata["redpill_verification"]["chat_id"] == (
        "chatcmpl-unit-1"
    )


def test_off_mode_is_a_plain_client() -> None:
    server = Server()
    chat = model(server, verification="off")
    msg = chat.invoke("hello")
    assert chat.verifier is None
    assert "redpill_verification" not in msg.response_metadata
    assert len(server.requests) == 1


def test_reasoning_content_kept_in_additional_kwargs() -> None:
    server = Server(lambda _r: httpx.Response(200, json=completion("ok", reasoning_content="why")))
    msg = model(server, verification="off").invoke("hello")
    assert msg.additional_kwargs["reasoning_content"] == "why"
    server.reply = lambda _r: httpx.Response(200, json=completion("ok", reasoning="how"))
    assert model(server, verification="off").invoke("x").additional_kwargs["reasoning_content"] == (
        "how"
    )


def test_streamed_reasoning_content_kept() -> None:
    body = sse(
        {"role": "assistant", "content": ""},
        {"reasoning_content": "th"},
        {"reasoning_content": "ink"},
        {"content": "done"},
    )
    server = Server(
        lambda _r: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    chunks = list(model(server, verification="off").stream("hello"))
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.additional_kwargs["reasoning_content"] == "think" and full.content == "done"
