"""500 interleaved async calls mixing the faults and attacks of the other files.

Eight shared adapter instances (ChatRedpill and Redpill; strict and annotate; plain and streamed)
point at the emulator, at a hostile server in front of it, and at emulators with a revoked TCB
and a debug TD. Each call draws a row; its faults travel in its own ``X-Emulator-Faults`` header
(attestation faults: one extra model per fault). Calls run 24 at a time, each task with its own
fake clock, so no call waits for real and deadlines are per call (see ``SIG_WAIT`` for what
the fake clock does not cover: real I/O). Every verdict must be the row's
exact verdict *for its own exchange*: the chat that carried the call's unique prompt is the one
whose id, bytes and receipt the verdict names; one receipt per exchange, none extra.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tenacity

from redpill_integrations.emulator import FAULTS_HEADER, Emulator, Faults
from redpill_integrations.emulator.model import ModelInfo
from redpill_integrations.policy import VerificationPolicy

from ._hostile import Action, Hostile, Req, reset
from .conftest import FakeTime, Outcome, Rig, acall, build, server_content
from .test_hostile import _chat_body, _duplicate_key

CALLS, CONCURRENCY = 500, 24
# The fake clocks stand still during I/O, but each signature fetch is still bounded in *real*
# seconds by what is left of the (fake) signature deadline: with fixed waits W the last attempt
# keeps exactly W. W must therefore dwarf any real fetch on a loaded machine (1 s did not: a
# never-ready row's 30th attempt ended TIMEOUT under load). 120 s / 20 s: attempts at fake
# t = 0, 20, ..., 100, the last one bounded by 20 real seconds.
SIG_DEADLINE, SIG_WAIT = 120.0, 20.0
SIG_ATTEMPTS = 6  # when the signature never comes
V, F, U = "verified", "failed", "unverifiable"
INF = 10**6


class TaskTime:
    """A fake clock per asyncio task (a ContextVar), plus a per-task wall-clock skew."""

    def __init__(self) -> None:
        self.var: contextvars.ContextVar[tuple[FakeTime, float]] = contextvars.ContextVar("t")

    def enter(self, skew: float) -> None:
        self.var.set((FakeTime(), skew))

    def monotonic(self) -> float:
        return self.var.get()[0].monotonic()

    def sleep(self, seconds: float) -> None:
        self.var.get()[0].sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await self.var.get()[0].asleep(seconds)

    def clock(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.var.get()[1])


# row: (target, header faults, attestation fault (extra model), status, reasons)
ROWS: dict[str, tuple[str, Faults | None, Faults | None, str, tuple[str, ...]]] = {
    "clean": ("main", None, None, V, ()),
    "not-ready-x3": ("main", Faults(signature_not_ready=3), None, V, ()),
    "never-ready": ("main", Faults(signature_not_ready=INF), None, U, ("SIGNATURE_UNAVAILABLE",)),
    "wrong-node": ("main", Faults(wrong_node=2), None, V, ()),
    "429": ("main", Faults(rate_limited=1, retry_after=2.0), None, V, ()),
    "429-forever": ("main", Faults(rate_limited=INF, retry_after=None), None, U, ("RATE_LIMITED",)),
    "5xx": ("main", Faults(server_error=2), None, V, ()),
    "expired": ("main", Faults(signature_ttl=0), None, U, ("SIGNATURE_EXPIRED",)),
    "tamper-alter": ("main", Faults(tamper_response="alter"), None, F, ("RESPONSE_HASH_MISMATCH",)),
    "tamper-reorder": (
        "main",
        Faults(tamper_response="reorder"),
        None,
        F,
        ("RESPONSE_HASH_MISMATCH",),
    ),
    "other-request": ("main", Faults(sign_other_request=True), None, F, ("REQUEST_HASH_MISMATCH",)),
    "foreign-signer": ("main", Faults(foreign_signer=True), None, F, ("SIGNER_NOT_ATTESTED",)),
    "ignore-nonce": (
        "main",
        None,
        Faults(ignore_nonce=True),
        F,
        ("NONCE_MISMATCH", "REPORT_DATA_MISMATCH", "GPU_NONCE_MISMATCH"),
    ),
    "compose": ("main", None, Faults(compose_mismatch=True), F, ("COMPOSE_MISMATCH",)),
    "rtmr": ("main", None, Faults(rtmr_mismatch=True), F, ("EVENT_LOG_MISMATCH",)),
    "unknown-shape": (
        "main",
        None,
        Faults(unknown_report_shape=True),
        F,
        ("UNSUPPORTED_PROTOCOL",),
    ),
    "gpu-nonce": ("main", None, Faults(gpu_wrong_nonce=True), F, ("GPU_NONCE_MISMATCH",)),
    "gpu-key": ("main", None, Faults(gpu_unknown_key=True), F, ("GPU_TOKEN_INVALID",)),
    "revoked": ("revoked", None, None, F, ("QUOTE_INVALID",)),
    "debug-td": ("debug", None, None, F, ("QUOTE_INVALID",)),
    "hostile-clean": ("hostile", None, None, V, ()),
    "signature-rst-x2": ("hostile", None, None, V, ()),
    "duplicate-key": ("hostile", None, None, F, ("DUPLICATE_JSON_KEY",)),
    "path-chars-id": ("hostile", None, None, V, ()),
}
STREAMABLE = {r for r in ROWS if r not in {"duplicate-key", "path-chars-id", "signature-rst-x2"}}


def _model(row: str) -> str:
    return f"phala/att-{row}" if ROWS[row][2] is not None else "phala/gpt-oss-120b"


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    with (
        Emulator(seed="mix", protocol="legacy") as main,
        Emulator(tcb_status="Revoked", protocol="legacy") as revoked,
        Emulator(debug_td=True, protocol="legacy") as debug,
    ):
        for row, (_, _, att, *_) in ROWS.items():
            if att is not None:
                model = _model(row)
                main.state.models[model] = ModelInfo(model, "served/" + row)
                main.set_faults(att, model=model)
        hostile = Hostile(main).start()
        resets: dict[str, int] = {}

        def route(req: Req) -> Action | None:
            if req.path == "/v1/chat/completions":
                prompt = json.loads(req.body)["messages"][-1]["content"]
                row, n = prompt.split("#")[0], prompt.split("#")[1]
                if row in ("duplicate-key", "path-chars-id", "signature-rst-x2"):
                    return hostile.mint_chat(lambda body: _minted(row, n, body))
            if req.path.startswith("/v1/signature/chatcmpl-rst"):
                resets[req.path] = resets.get(req.path, 0) + 1
                return reset() if resets[req.path] <= 2 else None
            return None

        hostile.route = route
        yield {"main": main, "revoked": revoked, "debug": debug, "hostile": hostile}
        hostile.stop()


def _minted(row: str, n: str, req: dict[str, Any]) -> tuple[str, bytes, bytes]:
    if row == "duplicate-key":
        chat_id, sent, signed = _duplicate_key(req)
        new = f"chatcmpl-dupkey-{n}"
        return (
            new,
            sent.replace(chat_id.encode(), new.encode()),
            signed.replace(chat_id.encode(), new.encode()),
        )
    chat_id = f"chatcmpl-rst-{n}" if row == "signature-rst-x2" else f"chatcmpl-../{n}?x=#/"
    body = json.dumps(_chat_body(req, chat_id)).encode()
    return chat_id, body, body


async def test_500_interleaved_calls_each_get_their_own_verdict(
    world: dict[str, Any], tmp_path: Path
) -> None:
    clocks = TaskTime()
    rigs: dict[tuple[str, str, bool], Rig] = {}
    for target in ("main", "revoked", "debug", "hostile"):
        base = world[target].base_url
        trust = (world["main"] if target == "hostile" else world[target]).trust
        for kind, mode in (("lc", "strict"), ("li", "annotate")):
            rigs[(target, kind, False)] = build(
                kind,
                base_url=base,
                trust=trust,
                mode=mode,
                fake=clocks,
                policy=VerificationPolicy(signature_deadline=SIG_DEADLINE),
                backoff=tenacity.wait_fixed(SIG_WAIT),
                store_path=tmp_path / f"{target}-{kind}.db",
            )
    rng = random.Random(9)
    plan = [
        (rng.choice(list(ROWS)), rng.choice(["lc", "li"]), rng.random() < 0.5) for _ in range(CALLS)
    ]
    plan = [(row, kind, stream and row in STREAMABLE) for row, kind, stream in plan]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int, row: str, kind: str, stream: bool) -> Outcome:
        target, header, *_ = ROWS[row]
        async with gate:
            clocks.enter(1300.0 if row == "expired" else 0.0)
            kw: dict[str, Any] = {}
            if header is not None:
                kw["extra_headers"] = {FAULTS_HEADER: header.to_header()}
            if _model(row) != "phala/gpt-oss-120b":
                kw["model"] = _model(row)
            return await acall(rigs[(target, kind, False)], f"{row}#{i}#", stream=stream, **kw)

    outcomes = await asyncio.gather(*(one(i, *p) for i, p in enumerate(plan)))

    assert set(ROWS) == {row for row, *_ in plan}  # every row drawn
    for i, ((row, kind, stream), out) in enumerate(zip(plan, outcomes, strict=True)):
        target, _, _, status, reasons = ROWS[row]
        rig = rigs[(target, kind, False)]
        label = f"call {i} ({row}, {kind}, {'sse' if stream else 'json'})"
        assert (out.verdict["status"], tuple(out.verdict["reasons"])) == (status, reasons), label
        assert (out.raised is not None) == (kind == "lc" and status != V), label
        prompt = f"{row}#{i}#".encode()
        (sent,) = [w for w in rig.chats() if prompt in w.body]  # this call's own exchange
        body = bytes(sent.received)
        assert out.content == server_content(body), label
        if row not in ("duplicate-key", "path-chars-id", "signature-rst-x2"):
            assert out.content.endswith(f"{row}#{i}#") or row.startswith("tamper"), label
        receipt = rig.store.get(out.verdict["receipt_id"])
        assert receipt is not None and receipt.result.to_dict() == out.verdict, label
        assert receipt.response_body == body and receipt.request_body == sent.body, label
        assert receipt.chat_id is not None and receipt.chat_id == out.verdict["chat_id"]
        assert receipt.chat_id in body.decode(), label
        if row in ("never-ready", "429-forever"):  # the budget ran out by waits, not by I/O
            assert receipt.signature_attempts == SIG_ATTEMPTS, label
    for rig in rigs.values():  # exactly one receipt per exchange, nothing else stored
        receipts = rig.store.list(limit=-1)
        assert len(receipts) == len(rig.chats()) == len({r.chat_id for r in receipts})
        rig.store.close()
        await rig.verifier.aclose()
