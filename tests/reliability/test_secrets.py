"""A canary API key through verified, failed, redirected and broken exchanges of both adapters.

The key must appear in no log record (DEBUG), exception text, repr, verdict or receipt (the
SQLite files' raw bytes), and must only ever be sent to the base URL's origin: never to the PCCS
or NRAS hosts, never across a redirect. What left the process is known from the recording
transports under every client (conftest) and from the hostile server's own request log.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from redpill_integrations.emulator import Emulator, Faults

from ._hostile import Action, Hostile, Req
from .conftest import MODEL, Outcome, Rig, Wire, call

CANARY = "sk-canary-" + secrets.token_hex(12)


def redirect(to: str) -> Action:
    async def act(req: Req, w: Any) -> None:
        w.write(
            f"HTTP/1.1 307 X\r\nLocation: {to}{req.target}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await w.drain()

    return act


@pytest.fixture
def hostile(emu: Emulator) -> Iterator[Hostile]:
    server = Hostile(emu).start()
    yield server
    server.stop()


def _leaks(text: str | bytes) -> bool:
    raw = text.encode() if isinstance(text, str) else text
    return CANARY.encode() in raw


def _wire_text(w: Wire) -> bytes:
    return str(w.url).encode() + repr(list(w.headers.raw)).encode() + w.body


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_canary_key_goes_nowhere_but_the_base_origin(
    emu: Emulator,
    hostile: Hostile,
    rig: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    lookups = [0]

    def route(req: Req) -> Action | None:
        if req.path.startswith("/v1/signature/"):
            lookups[0] += 1
            if lookups[0] == 1:  # the first lookup is redirected to a host that takes keys
                return redirect(emu.origin)
        if req.path == "/v1/chat/completions" and b"redirect me" in req.body:
            return redirect(emu.origin)
        return None

    hostile.route = route
    r: Rig = rig(kind, base_url=hostile.base_url, api_key=CANARY)
    outcomes: list[Outcome] = [call(r, "a verified answer"), call(r, "streamed", stream=True)]
    emu.set_faults(Faults(tamper_response="alter"), model=MODEL)
    outcomes.append(call(r, "a tampered answer"))  # strict: VerificationFailed
    emu.set_faults(Faults(signature_not_ready=10**6), model=MODEL)
    outcomes.append(call(r, "never signed"))
    emu.clear_faults()
    with pytest.raises(openai.APIError) as redirected:
        call(r, "redirect me")
    annotate: Rig = rig(kind, base_url=hostile.base_url, api_key=CANARY, mode="annotate")
    emu.set_faults(Faults(foreign_signer=True), model=MODEL)
    outcomes.append(call(annotate, "annotated warning"))

    verdicts = [(o.verdict["status"], tuple(o.verdict["reasons"])) for o in outcomes]
    assert verdicts == [
        ("unverifiable", ("UPSTREAM_HTTP_ERROR",)),  # the redirected lookup
        ("verified", ()),
        ("failed", ("RESPONSE_HASH_MISMATCH",)),
        ("unverifiable", ("SIGNATURE_UNAVAILABLE",)),
        ("failed", ("SIGNER_NOT_ATTESTED",)),
    ]
    sent = r.chat_wire + r.fetch_wire + annotate.chat_wire + annotate.fetch_wire
    to_base = [w for w in sent if w.url.port == hostile.port]
    elsewhere = [w for w in sent if w.url.port != hostile.port]
    # the key did go where it belongs: every chat, signature and report request to the base
    assert to_base and all(w.headers["authorization"] == f"Bearer {CANARY}" for w in to_base)
    assert {w.url.path for w in to_base} >= {"/v1/chat/completions", "/v1/attestation/report"}
    assert all(q.headers["authorization"] == f"Bearer {CANARY}" for q in hostile.log)
    # ... and nowhere else: PCCS, NRAS and JWKS were contacted, without it
    paths = {w.url.path for w in elsewhere}
    assert "/v3/attest/gpu" in paths and "/.well-known/jwks.json" in paths
    assert any(p.startswith("/tdx/certification/") for p in paths)
    assert not any(_leaks(_wire_text(w)) for w in elsewhere)
    # no redirect was followed, by the fetchers or the chat client
    assert not any(p.startswith("/v1/") for p in paths)
    assert isinstance(redirected.value, openai.APIStatusError)
    assert redirected.value.status_code == 307

    texts: list[str | bytes] = [caplog.text]
    texts += [str(rec.__dict__) for rec in caplog.records]
    texts += [str(redirected.value), repr(redirected.value)]
    for o in outcomes:
        texts += [str(o.verdict)]
        if o.raised is not None:
            texts += [str(o.raised), repr(o.raised), repr(o.raised.result), str(o.raised.response)]
    for rr in (r, annotate):
        texts += [repr(rr.llm), str(rr.llm), repr(rr.verifier), repr(rr.store)]
        texts += [x.to_json() for x in rr.store.list(limit=-1)]
    texts += [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    assert len(caplog.records) > 5 and len(texts) > 20
    assert not [t[:200] for t in texts if _leaks(t)]


def test_key_never_follows_a_redirect_of_the_verifiers_own_fetches(
    emu: Emulator, hostile: Hostile, rig: Any
) -> None:
    """Every signature lookup redirected to a key-accepting host: unverifiable, key kept home."""
    hostile.route = lambda req: (
        redirect(emu.origin) if req.path.startswith("/v1/signature/") else None
    )
    r: Rig = rig("li", base_url=hostile.base_url, api_key=CANARY, mode="annotate")
    out = call(r, "redirected forever")
    assert (out.verdict["status"], out.verdict["reasons"]) == (
        "unverifiable",
        ["UPSTREAM_HTTP_ERROR"],
    )
    assert all(w.url.port == hostile.port for w in r.fetch_wire if w.url.path.startswith("/v1/"))
    assert not any(_leaks(_wire_text(w)) for w in r.fetch_wire if w.url.port != hostile.port)


def test_canary_key_through_the_callback_handler_and_the_new_wire_paths(
    emu: Emulator, hostile: Hostile, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The paths added for security review 1: a plain ChatOpenAI verified by the handler's run
    tag (sync, async, streamed, and a fabricated answer re-using a genuine id), a header drip cut
    off by the fetch deadline, a stream held open after [DONE], the http:// refusal, the warning
    for non-production anchors, the captured headers."""
    import asyncio

    from langchain_openai import ChatOpenAI

    from redpill_integrations import ReceiptStore, RedpillVerifier
    from redpill_integrations.errors import ConfigurationError
    from redpill_integrations.langchain import RedpillCallbackHandler
    from redpill_integrations.policy import VerificationPolicy

    from .test_security_wire import (
        FABRICATED,
        chat_body,
        header_drip,
        held_open,
        raw_deflate_starting_0x78,
    )

    caplog.set_level(logging.DEBUG)
    store = ReceiptStore(tmp_path / "handler.sqlite3")
    verifier = RedpillVerifier(
        base_url=hostile.base_url,
        api_key=CANARY,
        trust=emu.trust,
        receipt_store=store,
        policy=VerificationPolicy(signature_deadline=1.0),
    )
    handler = RedpillCallbackHandler(verifier=verifier)
    llm = ChatOpenAI(
        model=MODEL,
        base_url=hostile.base_url,
        api_key=CANARY,  # type: ignore[arg-type]
        http_client=verifier.http_client(),
        http_async_client=verifier.async_http_client(),
        max_retries=0,
    )
    config: Any = {"callbacks": [handler]}
    genuine = llm.invoke("genuine", config=config)
    asyncio.run(llm.ainvoke("async", config=config))
    list(llm.stream("streamed", config=config))
    forged = raw_deflate_starting_0x78(chat_body(genuine.response_metadata["id"], FABRICATED))
    deflated = _answer(forged, {"Content-Encoding": "deflate"})
    hostile.route = lambda req: deflated if req.path == "/v1/chat/completions" else None
    llm.invoke("forged", config=config)
    held = held_open(hostile, "idle", seconds=2.0)
    hostile.route = lambda req: held if req.path == "/v1/chat/completions" else None
    list(llm.stream("held open", config=config))
    drip = header_drip(3.0)
    hostile.route = lambda req: drip if req.path.startswith("/v1/signature/") else None
    llm.invoke("dripping signature", config=config)
    hostile.route = lambda req: None
    with pytest.raises(ConfigurationError) as refused:
        RedpillVerifier(base_url="http://api.redpill.ai/v1", api_key=CANARY)
    verdicts = [(r.status.value, tuple(r.reasons)) for r in handler.results]
    assert verdicts == [
        ("verified", ()),
        ("verified", ()),
        ("verified", ()),
        ("failed", ("REQUEST_HASH_MISMATCH", "RESPONSE_HASH_MISMATCH")),
        ("verified", ()),
        ("unverifiable", ("TIMEOUT",)),
    ]
    assert all(q.headers["authorization"] == f"Bearer {CANARY}" for q in hostile.log)
    texts: list[str | bytes] = [caplog.text, str(refused.value), repr(refused.value)]
    texts += [str(rec.__dict__) for rec in caplog.records]
    texts += [repr(verifier), repr(handler), str(handler.summary())]
    texts += [str(r.to_dict()) for r in handler.results]
    texts += [x.to_json() for x in store.list(limit=-1)]
    store.close()
    verifier.close()
    texts += [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    assert not [t[:200] for t in texts if _leaks(t)]


def _answer(body: bytes, extra: dict[str, str]) -> Action:
    from ._hostile import answer

    return answer(200, body, extra=extra)


def test_canary_key_through_the_verdict_findings_paths(
    emu: Emulator, caplog: pytest.LogCaptureFixture, tmp_path: Path, capsys: Any
) -> None:
    """The paths added for security review 1's verdict findings: an unpinned TD's how-to-pin
    error (V2), the request nonce (V9), a held stream (I2), a cache hit re-derived from its
    receipt (V7), and ``redpill verify`` with a trust file and a policy file (V3)."""
    import dataclasses
    import json

    from langchain_core.caches import InMemoryCache

    from redpill_integrations import ReceiptStore, RedpillVerifier, VerificationFailed
    from redpill_integrations.cli import main
    from redpill_integrations.langchain import ChatRedpill
    from redpill_integrations.policy import VerificationPolicy

    caplog.set_level(logging.DEBUG)
    store = ReceiptStore(tmp_path / "findings.sqlite3")
    policy = VerificationPolicy(request_nonce=True)
    verifier = RedpillVerifier(
        base_url=emu.base_url, api_key=CANARY, trust=emu.trust, receipt_store=store, policy=policy
    )
    chat = ChatRedpill(
        base_url=emu.base_url,
        api_key=CANARY,  # type: ignore[arg-type]
        model=MODEL,
        verifier=verifier,
        cache=InMemoryCache(),
        hold_stream=True,
        max_retries=0,
    )
    first = chat.invoke("cached")
    again = chat.invoke("cached")  # re-derived from the receipt
    chunks = list(chat.stream("held"))
    unpinned = RedpillVerifier(
        base_url=emu.base_url,
        api_key=CANARY,
        trust=dataclasses.replace(emu.trust, os_images={}),
        receipt_store=store,
    )
    strict = ChatRedpill(
        base_url=emu.base_url,
        api_key=CANARY,  # type: ignore[arg-type]
        model=MODEL,
        verifier=unpinned,
        max_retries=0,
    )
    with pytest.raises(VerificationFailed) as refused:
        strict.invoke("unpinned")
    assert again.response_metadata["redpill_verification"]["cached"] is True
    assert refused.value.result.reasons[0].value == "MEASUREMENT_NOT_ALLOWED"
    receipt_id = first.response_metadata["redpill_verification"]["receipt_id"]
    receipt = store.get(receipt_id)
    assert receipt is not None
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(receipt.to_json())
    trust_file = emu.write_trust_file(tmp_path / "trust.json")
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps({"request_nonce": True}))
    capsys.readouterr()
    assert main(["verify", str(receipt_file), "--trust", str(trust_file)]) == 0
    assert main(["verify", str(receipt_file), "--trust", str(trust_file), "--json",
                 "--policy", str(policy_file)]) == 0  # fmt: skip
    out = capsys.readouterr()

    texts: list[str | bytes] = [caplog.text, out.out, out.err]
    texts += [str(rec.__dict__) for rec in caplog.records]
    texts += [str(refused.value), repr(refused.value), str(refused.value.response)]
    texts += [str(first.response_metadata), str(again.response_metadata)]
    texts += [str(c.response_metadata) for c in chunks]
    texts += [repr(chat), repr(strict), repr(verifier), repr(unpinned)]
    texts += [x.to_json() for x in store.list(limit=-1)]
    store.close()
    texts += [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    assert len(texts) > 10


def test_canary_key_through_the_aci_paths(
    aci_emu: Emulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The ACI protocol's own requests: the gateway probe, the receipt (retried, redirected),
    the session record, the gateway attestation; the key goes with each of them to the base
    origin (the receipts belong to the key's owner), never to the PCCS, never across a
    redirect; it is in no log, verdict, receipt, repr or store file."""
    from redpill_integrations import ReceiptStore, RedpillVerifier
    from redpill_integrations.policy import VerificationPolicy
    from redpill_integrations.wire import CAPTURE_HEADER

    from .conftest import Tee

    caplog.set_level(logging.DEBUG)
    hostile = Hostile(aci_emu).start()
    try:
        chat_log: list[Wire] = []
        fetch_log: list[Wire] = []
        store = ReceiptStore(tmp_path / "aci.sqlite3")
        verifier = RedpillVerifier(
            base_url=hostile.base_url,
            api_key=CANARY,
            trust=aci_emu.trust,
            receipt_store=store,
            policy=VerificationPolicy(check_session=True, signature_deadline=0.5),
            transport=Tee(fetch_log),
        )
        client = openai.OpenAI(
            base_url=hostile.base_url,
            api_key=CANARY,
            http_client=verifier.http_client(Tee(chat_log)),
            max_retries=0,
        )

        def chat(model: str = MODEL, stream: bool = False, **body: Any) -> Any:
            tag = verifier.recorder.new_tag()
            try:
                out = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "hi"}],
                    stream=stream,
                    extra_headers={CAPTURE_HEADER: tag},
                    extra_body=body or None,
                )
                if stream:
                    list(out)
            except openai.APIStatusError:
                pass
            return verifier.verify(verifier.recorder.take(tag))

        assert verifier.gateway().protocol == "aci"
        extras = verifier.request_extras("strict")
        results = [chat(), chat(stream=True, **extras)]
        results.append(chat("openai/gpt-4o-mini", **extras))  # refused, with a receipt
        aci_emu.set_faults(Faults(receipt_not_ready=10**6))
        results.append(chat())
        aci_emu.clear_faults()
        hostile.route = lambda req: (
            redirect(aci_emu.origin) if req.path.startswith("/v1/aci/receipts/") else None
        )
        results.append(chat())
        hostile.route = lambda req: None
        attestation = verifier.attest_gateway()
        verifier.close()
    finally:
        hostile.stop()

    verdicts = [(r.status.value, tuple(x.value for x in r.reasons)) for r in results]
    assert verdicts == [
        ("verified", ()),
        ("verified", ()),
        ("unverifiable", ("UPSTREAM_REFUSED",)),
        ("unverifiable", ("RECEIPT_UNAVAILABLE",)),
        ("unverifiable", ("RECEIPT_UNAVAILABLE",)),  # the redirect was not followed
    ]
    assert attestation.passed
    sent = chat_log + fetch_log
    to_base = [w for w in sent if w.url.port == hostile.port]
    elsewhere = [w for w in sent if w.url.port != hostile.port]
    assert all(w.headers.get("authorization") == f"Bearer {CANARY}" for w in to_base)
    base_paths = {w.url.path for w in to_base}
    assert {"/v1/models", "/v1/aci/attestation", "/v1/chat/completions"} <= base_paths
    assert any(p.startswith("/v1/aci/receipts/rcpt-") for p in base_paths)
    assert any(p.startswith("/v1/aci/sessions/") for p in base_paths)
    paths = {w.url.path for w in elsewhere}
    assert any(p.startswith("/tdx/certification/") for p in paths)
    assert not any(p.startswith("/v1/") for p in paths)  # no redirect followed
    assert not any(_leaks(_wire_text(w)) for w in elsewhere)

    texts: list[str | bytes] = [caplog.text, repr(verifier), repr(attestation)]
    texts += [str(rec.__dict__) for rec in caplog.records]
    texts += [str(r.to_dict()) for r in results]
    texts += [x.to_json() for x in store.list(limit=-1)]
    texts += [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    store.close()
    assert not [t[:200] for t in texts if _leaks(t)]
