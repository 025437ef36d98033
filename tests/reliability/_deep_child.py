"""Child process for test_deep_json.py: one chat whose ``TARGET`` answer nests JSON very deeply.

``python -m tests.reliability._deep_child KIND [eth] TARGET:DEPTH ...`` starts an emulator and a
hostile server, makes one clean call (a process in use), then for each TARGET one annotate-mode
call whose TARGET answer nests DEPTH levels, and prints one JSON line per target: the verdict, the
exception that escaped (if any), the receipts stored and whether nothing was lost. ``eth`` first
imports eth_account, as any web3 application does (it raises the interpreter's recursion limit to
100 000). It runs in its own process because hostile nesting can overflow the C stack (SIGSEGV).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from redpill_integrations import VerificationFailed
from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import VerificationPolicy

from ._hostile import Hostile, Req, answer
from .conftest import build, call, server_content


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def main(kind: str, eth: bool, rows: list[tuple[str, int]]) -> None:
    if eth:
        import eth_account  # noqa: F401 - the side effect is the point
    with Emulator(protocol="legacy") as emu:
        hostile = Hostile(emu).start()
        warm = build(
            kind,
            base_url=emu.base_url,
            trust=emu.trust,
            mode="annotate",
            store_path=Path(tempfile.mkdtemp()) / "w.db",
        )
        assert call(warm, "warm up").verdict["status"] == "verified"  # a process in use
        for target, depth in rows:
            one(emu, hostile, kind, target, depth)
        hostile.stop()


def one(emu: Emulator, hostile: Hostile, kind: str, target: str, depth: int) -> None:
    nest = deep(depth)

    def chat_body(req: dict[str, Any]) -> tuple[str, bytes, bytes]:
        body = json.dumps(
            {
                "id": "chatcmpl-deep",
                "object": "chat.completion",
                "created": 1,
                "model": req["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "deep"},
                    }
                ],
            }
        ).encode()
        body = body[:-1] + b', "x": ' + nest + b"}"
        return "chatcmpl-deep", body, body

    def route(req: Req) -> Any:
        if target == "chat" and req.path == "/v1/chat/completions":
            return hostile.mint_chat(chat_body)
        if target == "signature" and req.path.startswith("/v1/signature/"):
            return answer(200, b'{"text": ' + nest + b"}")
        if target == "report" and req.path == "/v1/attestation/report":
            return answer(200, b'{"signing_address": ' + nest + b"}")
        if target == "pccs" and req.path.startswith("/tdx/certification/v4/tcb"):
            return answer(200, b'{"tcbInfo": ' + nest + b', "signature": "00"}')
        if target == "nras" and req.path == "/v3/attest/gpu":
            return answer(200, nest)
        return None

    hostile.route = route
    trust = emu.trust
    if target == "pccs":
        trust = dataclasses.replace(trust, pccs_url=hostile.origin)
    if target == "nras":
        trust = dataclasses.replace(trust, nras_url=hostile.origin + "/v3/attest/gpu")
    rig = build(
        kind,
        base_url=hostile.base_url,
        trust=trust,
        mode="annotate",
        store_path=Path(tempfile.mkdtemp()) / "r.db",
        policy=VerificationPolicy(signature_deadline=3.0),
    )
    start = time.monotonic()
    report: dict[str, Any] = {"target": target, "escaped": None}
    try:
        out = call(rig, "nest deeply")
    except (openai.APIError, VerificationFailed) as exc:  # documented: not an escape
        report["documented"] = type(exc).__name__
    except Exception as exc:  # reported to the parent test
        report["escaped"] = type(exc).__name__
    else:
        (sent,) = rig.chats()
        report.update(
            status=out.verdict["status"],
            reasons=out.verdict["reasons"],
            # the deep chat body itself is never parsed here (that is what may crash)
            content_ok=out.content
            == ("deep" if target == "chat" else server_content(bytes(sent.received))),
        )
    receipts = rig.store.list()
    report.update(
        seconds=time.monotonic() - start,
        receipts=len(receipts),
        recursion_limit=sys.getrecursionlimit(),
    )
    if len(receipts) == 1:
        (sent,) = rig.chats()
        report.update(
            receipt_status=receipts[0].result.status.value,
            receipt_reasons=[r.value for r in receipts[0].result.reasons],
            receipt_ok=receipts[0].response_body == bytes(sent.received),
        )
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    eth = sys.argv[2] == "eth"
    main(sys.argv[1], eth, [(t, int(d)) for t, d in (a.split(":") for a in sys.argv[2 + eth :])])
