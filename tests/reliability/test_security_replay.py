"""Security review V9: a stored (response, signature) pair replayed for an identical request.

The legacy signature covers the request and response hashes and nothing that makes it fresh. A
gateway keeps the first answer to a prompt and serves it again, with the same chat id (whose
signature the TEE still holds), for a later identical request. By default that replay verifies:
the README says so. With ``VerificationPolicy(request_nonce=True)`` every request carries a
random ``user`` value covered by the signed request hash, so the replay fails
``REQUEST_HASH_MISMATCH``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import VerificationPolicy

from ._hostile import Hostile, Req, answer
from .conftest import build, call

PROMPT = "what is the balance?"


class Replayer:
    """Answers the first chat honestly, records it, then serves that answer to every later one."""

    def __init__(self, hostile: Hostile) -> None:
        self.hostile = hostile
        self.kept: bytes | None = None
        self.bodies: list[dict[str, Any]] = []

    def route(self, req: Req) -> Any:
        if not req.path.endswith("/chat/completions"):
            return None
        self.bodies.append(json.loads(req.body))
        if self.kept is not None:
            return answer(200, self.kept)

        async def first(r: Req, w: asyncio.StreamWriter) -> None:
            skip = {"host", "content-length", "connection", "transfer-encoding"}
            got = await self.hostile._client.post(
                r.target,
                content=r.body,
                headers={k: v for k, v in r.headers.items() if k not in skip},
            )
            self.kept = got.content
            await answer(got.status_code, got.content)(r, w)

        return first


@pytest.mark.parametrize(
    ("request_nonce", "second"),
    [(False, ("verified", [])), (True, ("failed", ["REQUEST_HASH_MISMATCH"]))],
)
@pytest.mark.parametrize("kind", ["lc", "li"])
def test_a_replayed_answer(
    emulator: Emulator,
    tmp_path: Path,
    kind: str,
    request_nonce: bool,
    second: tuple[str, list[str]],
) -> None:
    hostile = Hostile(emulator).start()
    replayer = Replayer(hostile)
    hostile.route = replayer.route
    try:
        rig = build(
            kind,
            base_url=hostile.base_url,
            trust=emulator.trust,
            store_path=tmp_path / "r.sqlite3",
            mode="annotate",
            policy=VerificationPolicy(request_nonce=request_nonce),
        )
        one = call(rig, PROMPT)
        two = call(rig, PROMPT)
    finally:
        hostile.stop()
    assert (one.verdict["status"], one.verdict["reasons"]) == ("verified", [])
    assert (two.verdict["status"], two.verdict["reasons"]) == second
    assert two.content == one.content  # the very same answer, served twice
    users = [body.get("user") for body in replayer.bodies]
    if request_nonce:
        assert all(isinstance(u, str) and u.startswith("rp-") and len(u) == 35 for u in users)
        assert users[0] != users[1]
    else:
        assert users == [None, None]
