"""200 concurrent streamed chats on loopback, each with its own correct signature."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from redpill_integrations.emulator import Emulator

from ._raw import chat_body

N = 200
#: httpcore's pool scans all its connections per request (O(n^2) for one 200-connection pool),
#: so the 200 concurrent streams are spread over several small clients
CLIENTS = 20


async def test_200_concurrent_streams_each_signed(emu: Emulator) -> None:
    limits = httpx.Limits(max_connections=N // CLIENTS)
    headers = {
        "Authorization": f"Bearer {emu.api_key}",
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
    }
    clients = [
        httpx.AsyncClient(base_url=emu.base_url, headers=headers, limits=limits, timeout=60)
        for _ in range(CLIENTS)
    ]
    try:

        async def one(i: int) -> tuple[bytes, bytes, dict[str, str]]:
            c = clients[i % CLIENTS]
            body = chat_body(stream=True, text=f"question number {i} " * 3)
            async with c.stream("POST", "/chat/completions", content=body) as r:
                assert r.status_code == 200
                raw = b"".join([chunk async for chunk in r.aiter_raw()])
            chat_id = json.loads(raw.split(b"\n", 1)[0][6:])["id"]
            sig = await c.get(f"/signature/{chat_id}", params={"model": "phala/gpt-oss-120b"})
            assert sig.status_code == 200
            return body, raw, sig.json()

        start = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(N)))
        elapsed = time.monotonic() - start
    finally:
        for c in clients:
            await c.aclose()
    assert elapsed < 90  # ~3-5 s on an idle 2-core box; generous for a shared CI runner
    assert len({r[2]["text"] for r in results}) == N
    for body, raw, sig in results:
        assert raw.endswith(b"data: [DONE]\n\n")
        assert sig["text"] == (
            f"{hashlib.sha256(body).hexdigest()}:{hashlib.sha256(raw).hexdigest()}"
        )
        signer = Account.recover_message(
            encode_defunct(text=sig["text"]), signature=sig["signature"]
        )
        assert signer == emu.signing_address
    assert emu.stats.chats_completed == N
