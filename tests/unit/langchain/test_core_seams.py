"""ChatRedpill through the adapter core: the verifier's own TEE rule, the shared-verifier check,
and the per-call request fields (sent, and captured byte for byte)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import redpill_integrations._adapter.core as core
from redpill_integrations import ReceiptStore, RedpillVerifier
from redpill_integrations.errors import ConfigurationError, VerificationFailed
from redpill_integrations.langchain import ChatRedpill
from redpill_integrations.results import Reason
from tests.support import FakeTime
from tests.unit.langchain.test_chat_model import KEY, TEE, Server, completion, model, sse


def _verifier(server: Server, **kwargs: Any) -> RedpillVerifier:
    clock = FakeTime()
    return RedpillVerifier(
        api_key=KEY,
        transport=httpx.MockTransport(server),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        **kwargs,
    )


def test_strict_precheck_asks_the_verifier_for_its_tee_models() -> None:
    server = Server(lambda _r: httpx.Response(200, json={**completion(), "model": "acme/m"}))
    custom = _verifier(server, tee_model_prefixes=("acme/",))
    chat = model(server, model="acme/m", verification="annotate", verifier=custom)
    assert chat.invoke("hello").response_metadata["redpill_verification"]["reasons"] == [
        "SIGNATURE_UNAVAILABLE"  # accepted as a TEE model: its signature was looked up
    ]
    with pytest.raises(VerificationFailed):  # strict sends it too (and finds no signature)
        model(server, model="acme/m", verifier=custom).invoke("hello")
    chats = len([r for r in server.requests if r.url.path.endswith("/chat/completions")])
    refused = ChatRedpill(model=TEE, api_key=KEY, verifier=custom)  # built: no request yet
    with pytest.raises(ConfigurationError) as err:
        refused.invoke("hello")
    assert err.value.reason is Reason.MODEL_NOT_TEE and "acme/…" in str(err.value)
    assert len([r for r in server.requests if r.url.path.endswith("/chat/completions")]) == chats


def test_a_shared_verifier_must_serve_the_models_base_url() -> None:
    other = _verifier(Server(), base_url="https://elsewhere.test/v1")
    with pytest.raises(ConfigurationError, match="base_url differs"):
        ChatRedpill(model=TEE, api_key=KEY, verifier=other)


@pytest.mark.parametrize("stream", [False, True])
def test_request_fields_are_sent_and_captured_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, stream: bool
) -> None:
    seen: list[tuple[Any, str]] = []

    def fields(verifier: RedpillVerifier, mode: str) -> dict[str, Any]:
        seen.append((verifier, mode))
        return {"provider": {"aci_verified": True}} if mode == "strict" else {}

    monkeypatch.setattr(core, "request_fields", fields)

    def reply(_r: httpx.Request) -> httpx.Response:
        if stream:
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=sse({"content": "a"}, {"content": "b"}),
            )
        return httpx.Response(200, json=completion())

    server = Server(reply)
    store = ReceiptStore(tmp_path / "r.sqlite3")
    verifier = _verifier(server, receipt_store=store)
    chat = model(server, verification="annotate", verifier=verifier, extra_body={"user_x": 1})
    strict = model(server, verifier=verifier, extra_body={"user_x": 1})
    if stream:
        list(chat.stream("hi"))
        with pytest.raises(VerificationFailed):  # unverifiable here: raised after the stream
            list(strict.stream("hi"))
    else:
        chat.invoke("hi")
        with pytest.raises(VerificationFailed):
            strict.invoke("hi")
    sent = [r for r in server.requests if r.url.path.endswith("/chat/completions")]
    bodies = [json.loads(r.content) for r in sent]
    assert [b.get("provider") for b in bodies] == [None, {"aci_verified": True}]
    assert [b["user_x"] for b in bodies] == [1, 1]  # the model's own extra_body is kept
    assert [mode for _, mode in seen] == ["annotate", "strict"]
    captured = sorted(r.request_body for r in store.list() if r.request_body is not None)
    assert captured == sorted(r.content for r in sent)
