"""Every emulator fault through ChatRedpill and Redpill, plain and streamed, strict and annotate.

Each row: the faults set on the model, the exact verdict, and the signature fetches the receipt
must count. Retries run on a fake clock (no real waiting); the never-ready rows end within the
signature deadline on that clock. Every row also checks that nothing is lost (conftest).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_index.core.base.llms.types import ChatMessage

from redpill_integrations import RedpillError
from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason

from .conftest import MODEL, assert_exchange, build, call, server_content

FOREVER = 10**6
DEADLINE = 20.0
V, F, U = "verified", "failed", "unverifiable"

# id: (faults, status, reasons, signature attempts (None: not asserted), streams only?)
SIGNATURE_ROWS: dict[str, tuple[Faults, str, tuple[str, ...], int | None]] = {
    "clean": (Faults(), V, (), 1),
    "not-ready-x3": (Faults(signature_not_ready=3), V, (), 4),
    "never-ready": (Faults(signature_not_ready=FOREVER), U, ("SIGNATURE_UNAVAILABLE",), None),
    "wrong-node-x2": (Faults(wrong_node=2), V, (), 3),
    "429-retry-after": (Faults(rate_limited=1, retry_after=3.0), V, (), 2),
    "429-no-retry-after": (Faults(rate_limited=2, retry_after=None), V, (), 3),
    "429-forever": (Faults(rate_limited=FOREVER), U, ("RATE_LIMITED",), None),
    "503-x2": (Faults(server_error=2), V, (), 3),
    "502-forever": (
        Faults(server_error=FOREVER, server_error_status=502),
        U,
        ("UPSTREAM_HTTP_ERROR",),
        None,
    ),
    "200-error-envelope-x2": (Faults(error_code_envelope=2), V, (), 3),
    "mixed-404-429-503-envelope": (
        Faults(
            signature_not_ready=1,
            wrong_node=1,
            rate_limited=1,
            server_error=1,
            error_code_envelope=1,
        ),
        V,
        (),
        6,
    ),
    "tampered-alter": (Faults(tamper_response="alter"), F, ("RESPONSE_HASH_MISMATCH",), 1),
    "tampered-inject": (Faults(tamper_response="inject"), F, ("RESPONSE_HASH_MISMATCH",), 1),
    "tampered-drop": (Faults(tamper_response="drop"), F, ("RESPONSE_HASH_MISMATCH",), 1),
    "tampered-reorder": (Faults(tamper_response="reorder"), F, ("RESPONSE_HASH_MISMATCH",), 1),
    "signed-other-request": (Faults(sign_other_request=True), F, ("REQUEST_HASH_MISMATCH",), 1),
    "foreign-signer": (Faults(foreign_signer=True), F, ("SIGNER_NOT_ATTESTED",), 1),
}
ATTESTATION_ROWS: dict[str, tuple[Faults, str, tuple[str, ...]]] = {
    "report-ignores-nonce": (
        Faults(ignore_nonce=True),
        F,
        ("NONCE_MISMATCH", "REPORT_DATA_MISMATCH", "GPU_NONCE_MISMATCH"),
    ),
    "compose-mismatch": (Faults(compose_mismatch=True), F, ("COMPOSE_MISMATCH",)),
    "rtmr-mismatch": (Faults(rtmr_mismatch=True), F, ("EVENT_LOG_MISMATCH",)),
    "unknown-report-shape": (Faults(unknown_report_shape=True), F, ("UNSUPPORTED_PROTOCOL",)),
    "gpu-wrong-nonce": (Faults(gpu_wrong_nonce=True), F, ("GPU_NONCE_MISMATCH",)),
    "gpu-unknown-key": (Faults(gpu_unknown_key=True), F, ("GPU_TOKEN_INVALID",)),
    "report-connection-reset": (Faults(attestation_reset=1), U, ("UPSTREAM_HTTP_ERROR",)),
}
STYLES = [
    pytest.param(k, m, s, id=f"{k}-{m}-{'sse' if s else 'json'}")
    for k in ("lc", "li")
    for m in ("strict", "annotate")
    for s in (False, True)
]


@pytest.mark.parametrize(("kind", "mode", "stream"), STYLES)
@pytest.mark.parametrize("row", list(SIGNATURE_ROWS))
def test_signature_and_response_faults(
    emu: Emulator, rig: Any, row: str, kind: str, mode: str, stream: bool
) -> None:
    faults, status, reasons, attempts = SIGNATURE_ROWS[row]
    emu.set_faults(faults, model=MODEL)
    r = rig(kind, mode=mode, policy=VerificationPolicy(signature_deadline=DEADLINE))
    out = call(r, f"row {row}: say something long enough to span several events", stream=stream)
    receipt = assert_exchange(r, out, status, reasons, mode=mode)
    if attempts is not None:
        assert receipt.signature_attempts == attempts
    else:  # retried until the deadline on the fake clock, and not beyond
        assert receipt.signature_attempts > 3
        assert r.time.now <= DEADLINE
    if row == "429-retry-after":
        assert max(r.time.sleeps) >= 3.0
    assert emu.stats.signature_lookups[out.verdict["chat_id"]] == receipt.signature_attempts


@pytest.mark.parametrize(("kind", "mode", "stream"), [*STYLES[::3], STYLES[5]])
@pytest.mark.parametrize("row", list(ATTESTATION_ROWS))
def test_attestation_faults(
    emu: Emulator, rig: Any, row: str, kind: str, mode: str, stream: bool
) -> None:
    faults, status, reasons = ATTESTATION_ROWS[row]
    emu.set_faults(faults, model=MODEL)
    r = rig(kind, mode=mode)
    out = call(r, f"attestation row {row}", stream=stream)
    receipt = assert_exchange(r, out, status, reasons, mode=mode)
    assert receipt.signature_attempts == 1 and out.verdict["checks"]["signature"] == "pass"
    if row == "report-connection-reset":  # a failed attestation is never cached: next call heals
        r2 = rig(kind, mode=mode)
        assert call(r2, "again", stream=stream).verdict["status"] == V


@pytest.fixture(scope="module", params=["Revoked", "debug-td"])
def bad_tee(request: pytest.FixtureRequest) -> Iterator[tuple[Emulator, str]]:
    kw: dict[str, Any] = (
        {"debug_td": True} if request.param == "debug-td" else {"tcb_status": "Revoked"}
    )
    with Emulator(protocol="legacy", **kw) as emu:
        yield emu, request.param


@pytest.mark.parametrize(("kind", "mode", "stream"), [*STYLES[::3], STYLES[5]])
def test_revoked_tcb_and_debug_td(
    bad_tee: tuple[Emulator, str], tmp_path: Path, kind: str, mode: str, stream: bool
) -> None:
    emu, _ = bad_tee
    r = build(kind, base_url=emu.base_url, trust=emu.trust, store_path=tmp_path / "r.db", mode=mode)
    out = call(r, "on a bad TEE", stream=stream)
    assert_exchange(r, out, F, ("QUOTE_INVALID",), mode=mode)
    assert out.verdict["checks"]["quote"] == "fail"


@pytest.mark.parametrize(("kind", "mode", "stream"), STYLES)
def test_expired_signature(emu: Emulator, rig: Any, kind: str, mode: str, stream: bool) -> None:
    """The node forgot the signature (TTL 0) and the verification runs 1300 s after the exchange
    (past the 1200 s retention): "not found" means "expired", not "not yet"."""
    emu.set_faults(Faults(signature_ttl=0), model=MODEL)
    r = rig(
        kind, mode=mode, clock_skew=1300.0, policy=VerificationPolicy(signature_deadline=DEADLINE)
    )
    out = call(r, "too late", stream=stream)
    assert_exchange(r, out, U, ("SIGNATURE_EXPIRED",), mode=mode)


@pytest.mark.parametrize(("kind", "mode"), [("lc", "strict"), ("li", "annotate")])
def test_truncated_stream(emu: Emulator, rig: Any, kind: str, mode: str) -> None:
    emu.set_faults(Faults(truncate_stream=True), model=MODEL)
    r = rig(kind, mode=mode)
    out = call(r, "cut short", stream=True)
    receipt = assert_exchange(r, out, U, ("STREAM_INCOMPLETE",), mode=mode)
    assert receipt.signature_attempts == 0 and b"[DONE]" not in (receipt.response_body or b"")


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_never_ready_ends_within_the_real_deadline(emu: Emulator, rig: Any, kind: str) -> None:
    emu.set_faults(Faults(signature_not_ready=FOREVER), model=MODEL)
    r = rig(kind, real_time=True, policy=VerificationPolicy(signature_deadline=1.5))
    start = time.monotonic()
    out = call(r, "never signed, really waiting")
    assert time.monotonic() - start < 1.5 + 1.0
    receipt = assert_exchange(r, out, U, ("SIGNATURE_UNAVAILABLE",))
    assert receipt.signature_attempts >= 2


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_chat_reset_before_the_body_ends(emu: Emulator, rig: Any, kind: str) -> None:
    """Nothing was delivered: the documented openai.APIConnectionError, no verdict, no receipt
    (the adapter drops the capture of an attempt that delivered nothing)."""
    emu.set_faults(Faults(reset_mid_stream=True), model=MODEL)
    r = rig(kind)
    with pytest.raises(openai.APIConnectionError):
        call(r, "reset me")
    assert len(r.store) == 0 and emu.stats.signature_lookups == {}


def _stream_until_reset(r: Any) -> tuple[str, BaseException | None]:
    delivered, error = [], None
    try:
        if r.kind == "lc":
            for c in r.llm.stream("reset me mid-stream, with an answer long enough to split"):
                delivered.append(str(c.content))
        else:
            msgs = [ChatMessage(role="user", content="reset me mid-stream, long enough to split")]
            for c in r.llm.stream_chat(msgs):
                delivered.append(c.delta or "")
    except Exception as exc:
        error = exc
    return "".join(delivered), error


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_stream_reset_keeps_what_was_delivered(emu: Emulator, rig: Any, kind: str) -> None:
    emu.set_faults(Faults(reset_mid_stream=True), model=MODEL)
    r = rig(kind)
    delivered, error = _stream_until_reset(r)
    assert isinstance(error, openai.APIError | httpx.TransportError)
    (sent,) = r.chats()
    assert delivered and delivered == server_content(bytes(sent.received))
    (receipt,) = r.store.list()
    assert (receipt.result.status.value, receipt.result.reasons) == (U, (Reason.STREAM_INCOMPLETE,))
    assert receipt.response_body == bytes(sent.received) and receipt.signature_attempts == 0


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_stream_reset_raises_a_documented_error(emu: Emulator, rig: Any, kind: str) -> None:
    emu.set_faults(Faults(reset_mid_stream=True), model=MODEL)
    _, error = _stream_until_reset(rig(kind))
    assert isinstance(error, openai.APIError | RedpillError)
