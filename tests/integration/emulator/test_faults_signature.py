"""Signature-lookup and chat faults: each one is produced as documented."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.emulator.signer import SignatureStore
from tests.support import FakeTime

from ._raw import TEE_MODEL, chat, chat_body, client, signature, sse_events

NOT_FOUND = "Chat id not found or expired"


def _statuses(c: httpx.Client, chat_id: str, n: int) -> list[int]:
    return [signature(c, chat_id).status_code for _ in range(n)]


def test_counted_lookup_faults_in_order(emu: Emulator) -> None:
    emu.set_faults(
        Faults(
            signature_not_ready=2,
            wrong_node=1,
            rate_limited=1,
            server_error=1,
            error_code_envelope=1,
        )
    )
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False))
        answers = [signature(c, chat_id) for _ in range(7)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429, 503, 200, 200]
    assert answers[0].json()["error"]["message"] == NOT_FOUND
    assert answers[2].headers["x-emulator-node"] == "node-b"
    assert answers[3].headers["retry-after"] == "1"
    assert "text" not in answers[5].json() and answers[5].json()["error_code"] == 404
    assert "text" in answers[6].json()
    assert emu.stats.signature_lookups[chat_id] == 7


def test_rate_limit_without_retry_after_and_custom_5xx(emu: Emulator) -> None:
    emu.set_faults(
        Faults(rate_limited=1, retry_after=None, server_error=1, server_error_status=502)
    )
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False))
        first, second = signature(c, chat_id), signature(c, chat_id)
    assert first.status_code == 429 and "retry-after" not in first.headers
    assert second.status_code == 502


def test_faults_scoped_per_model_and_per_request(emu: Emulator) -> None:
    emu.set_faults(Faults(signature_not_ready=1), model="phala/qwen-2.5-7b-instruct")
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False))  # another model: unaffected
        assert _statuses(c, chat_id, 1) == [200]
        hdr = {"X-Emulator-Faults": Faults(signature_not_ready=2).to_header()}
        chat_id, _, _ = chat(c, chat_body(stream=False), **hdr)  # chat header governs lookups
        assert _statuses(c, chat_id, 3) == [404, 404, 200]
        chat_id, _, _ = chat(c, chat_body(stream=False, model="phala/qwen-2.5-7b-instruct"))
        assert _statuses(c, chat_id, 2) == [404, 200]
        bad = c.get("/signature/x", headers={"X-Emulator-Faults": '{"nope": 1}'})
    assert bad.status_code == 400


def test_lookup_delay_is_slow(emu: Emulator) -> None:
    emu.set_faults(Faults(lookup_delay=0.3))
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False))
        start = time.monotonic()
        assert signature(c, chat_id).status_code == 200
    assert time.monotonic() - start >= 0.3


def _fake_clock(emu: Emulator) -> FakeTime:
    """Drive ``emu``'s signature readiness and expiry by a fake clock (a fresh emulator only):
    on real time, a lookup made later than the delay/TTL by a loaded machine changes the answer."""
    fake = FakeTime(start=1024.0)  # binary fractions below: exact boundaries
    emu.state.store = SignatureStore(clock=fake.monotonic)
    return fake


def _recorded(emu: Emulator, chat_id: str) -> None:
    """Wait (real time, bounded) until the server has filed ``chat_id``'s signature record: it
    files it just after the last byte is sent, so a loaded machine may let the client advance
    the fake clock first, which would start the delay/TTL late."""
    deadline = time.monotonic() + 10
    while emu.state.store.get(chat_id) is None:
        assert time.monotonic() < deadline, "the emulator never filed the chat"
        time.sleep(0.005)


def test_signature_delay_then_ready(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(protocol="legacy")
    fake = _fake_clock(emu)
    emu.set_faults(Faults(signature_delay=0.5))
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=True))
        _recorded(emu, chat_id)
        fake.sleep(0.375)
        assert signature(c, chat_id).status_code == 404
        fake.sleep(0.125)  # ready exactly at the delay
        assert signature(c, chat_id).status_code == 200


def test_signature_expires_after_ttl(emu: Emulator, emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu.set_faults(Faults(signature_ttl=0))
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False))
        gone = signature(c, chat_id)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == NOT_FOUND
    short = emulator_factory(signature_ttl=0.5, protocol="legacy")
    fake = _fake_clock(short)
    with client(short) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False))
        _recorded(short, chat_id)
        fake.sleep(0.375)
        assert signature(c, chat_id).status_code == 200
        fake.sleep(0.125)  # gone exactly at the TTL
        assert signature(c, chat_id).status_code == 404


@pytest.mark.parametrize("stream", [True, False])
def test_reset_mid_stream_drops_connection_and_signature(emu: Emulator, stream: bool) -> None:
    emu.set_faults(Faults(reset_mid_stream=True))
    with client(emu) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post(
                "/chat/completions",
                content=chat_body(stream=stream),
                headers={"Content-Type": "application/json"},
            )
        assert emu.stats.chats_completed == (1 if not stream else 0)


def test_truncated_stream_has_no_done_and_is_signed_as_sent(emu: Emulator) -> None:
    emu.set_faults(Faults(truncate_stream=True))
    with client(emu) as c:
        chat_id, raw, _ = chat(c, chat_body(stream=True))
        sig = signature(c, chat_id).json()
    assert b"[DONE]" not in raw and raw.endswith(b"\n\n")
    assert sig["text"].split(":")[1] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("mode", ["alter", "inject", "drop", "reorder"])
def test_tampered_stream_differs_from_signed_bytes(emu: Emulator, mode: str) -> None:
    with client(emu) as c:
        hdr = {"X-Emulator-Faults": json.dumps({"tamper_response": mode})}
        chat_id, raw, _ = chat(c, chat_body(stream=True, text="a longer question " * 4), **hdr)
        sig = signature(c, chat_id).json()
    assert sig["text"].split(":")[1] != hashlib.sha256(raw).hexdigest()
    assert raw.endswith(b"data: [DONE]\n\n")
    events = sse_events(raw)
    assert json.loads(events[0][6:])["id"] == chat_id
    if mode == "alter":
        assert b"[altered]" in raw
    if mode == "inject":
        assert raw.count(b"[altered]") == 1


def test_tampered_json_differs_from_signed_bytes(emu: Emulator) -> None:
    emu.set_faults(Faults(tamper_response="alter"))
    with client(emu) as c:
        chat_id, raw, _ = chat(c, chat_body(stream=False))
        sig = signature(c, chat_id).json()
    assert b"[altered in transit]" in raw
    assert sig["text"].split(":")[1] != hashlib.sha256(raw).hexdigest()


def test_foreign_signer_and_other_request(emu: Emulator) -> None:
    emu.set_faults(Faults(foreign_signer=True, sign_other_request=True))
    body = chat_body(stream=False)
    with client(emu) as c:
        chat_id, raw, _ = chat(c, body)
        sig = signature(c, chat_id).json()
    signer = Account.recover_message(encode_defunct(text=sig["text"]), signature=sig["signature"])
    assert signer == emu.foreign_signing_address != emu.signing_address
    req, resp = sig["text"].split(":")
    assert req != hashlib.sha256(body).hexdigest()
    assert resp == hashlib.sha256(raw).hexdigest()


def test_non_tee_model_has_no_signature_or_report(emu: Emulator) -> None:
    with client(emu) as c:
        chat_id, _, _ = chat(c, chat_body(stream=False, model="openai/gpt-4o-mini"))
        sig = signature(c, chat_id, model="openai/gpt-4o-mini")
        rep = c.get(
            "/attestation/report", params={"model": "openai/gpt-4o-mini", "nonce": "00" * 32}
        )
    assert sig.status_code == 404 and rep.status_code == 404
    assert rep.json()["error"]["code"] == "model_not_verifiable"
    assert emu.models["openai/gpt-4o-mini"] is False and emu.models[TEE_MODEL] is True
