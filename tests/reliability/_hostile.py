"""A small hostile HTTP/1.1 server on 127.0.0.1 for what the emulator cannot do wrong enough.

Raw asyncio (no framework), one request per connection (every answer says ``Connection: close``),
on its own thread. Each request is logged as received (:attr:`Hostile.log`) and offered to
:attr:`Hostile.route`; ``None`` forwards it to the upstream emulator unchanged. Actions are
coroutines ``(request, writer) -> None`` built by the helpers below: a canned answer, a connection
reset (RST) after a partial answer, a slow drip, an endless body behind a multi-GB
``Content-Length``, a gzip bomb. :meth:`Hostile.mint_chat` serves a chat body crafted by the test
and signs it with the emulator's *attested* key (so that the verdict turns on the body itself: a
duplicate key, deep nesting, an id with path characters, ...).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from redpill_integrations.emulator import Emulator

Action = Callable[["Req", asyncio.StreamWriter], Awaitable[None]]


@dataclasses.dataclass
class Req:
    method: str
    target: str  # the request target exactly as sent (path?query, still percent-encoded)
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


def head(status: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join([*lines, "Connection: close", "", ""])).encode()


def answer(
    status: int, body: bytes, ctype: str = "application/json", extra: dict[str, str] | None = None
) -> Action:
    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        w.write(
            head(status, {"Content-Type": ctype, "Content-Length": str(len(body)), **(extra or {})})
            + body
        )
        await w.drain()

    return act


def reset(partial: bytes = b"") -> Action:
    """Send ``partial`` (maybe nothing), then drop the connection with a TCP RST."""

    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        if partial:
            w.write(
                head(
                    200,
                    {"Content-Type": "application/json", "Content-Length": str(len(partial) * 3)},
                )
                + partial
            )
            await w.drain()
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    return act


def drip(seconds: float, interval: float = 0.05) -> Action:
    """A 200 whose body arrives one byte per ``interval`` (always valid-looking JSON so far)."""

    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        w.write(head(200, {"Content-Type": "application/json", "Content-Length": "1000000"}))
        w.write(b'{"text": "')
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            w.write(b"a")
            await w.drain()
            await asyncio.sleep(interval)

    return act


def endless(announced: int = 5 * 1024**3, seconds: float = 20.0) -> Action:
    """A 200 announcing ``announced`` bytes (5 GiB) and streaming zeros until the client quits."""

    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        w.write(head(200, {"Content-Type": "application/json", "Content-Length": str(announced)}))
        block = b"0" * 65536
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            w.write(block)
            await w.drain()

    return act


def make_bomb(mib: int = 1024) -> bytes:
    """A gzip body of about 1 MB that inflates to ``mib`` MiB (1 GiB) of zeros: one 1 MiB block
    compressed after a full flush is byte-aligned and context-free, so it is simply repeated."""
    zeros = b"\0" * (1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    trailer = b"\x03\x00" + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)  # final block
    return first + block * (mib - 1) + trailer


def gzip_bomb(bomb: bytes) -> Action:
    """A 200 ``Content-Encoding: gzip`` body that inflates a thousandfold (see make_bomb)."""

    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        w.write(
            head(
                200,
                {
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                    "Content-Length": str(len(bomb)),
                },
            )
        )
        for i in range(0, len(bomb), 65536):
            w.write(bomb[i : i + 65536])
            await w.drain()

    return act


class Hostile:
    """See the module docstring. ``route(req)`` returns an action, or None to forward."""

    def __init__(self, upstream: Emulator) -> None:
        self.upstream = upstream
        self.log: list[Req] = []
        self.route: Callable[[Req], Action | None] = lambda req: None
        self.signed: dict[str, str] = {}  # chat id -> signed text (chats minted here)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hostile-server")
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stopping = asyncio.Event()
            self._client = httpx.AsyncClient(base_url=self.upstream.origin, timeout=30)
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=2**20)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopping.wait()
            self._server.close()
            mine = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not mine]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._client.aclose()

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> Hostile:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            raw = await r.readuntil(b"\r\n\r\n")
            first, *lines = raw.decode("latin-1").split("\r\n")
            method, target, _ = first.split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)
            }
            body = await r.readexactly(int(headers.get("content-length", "0")))
            req = Req(method, target, headers, body)
            self.log.append(req)
            action = self.route(req) or self._default(req)
            await action(req, w)
        except (ConnectionError, asyncio.IncompleteReadError, httpx.HTTPError):
            pass
        finally:
            if not w.transport.is_closing():
                w.close()

    def _default(self, req: Req) -> Action:
        if req.path.startswith("/v1/signature/"):
            chat_id = unquote(req.path[len("/v1/signature/") :])
            if chat_id in self.signed:
                return answer(200, self.signature_body(self.signed[chat_id]))
        return self._forward

    async def _forward(self, req: Req, w: asyncio.StreamWriter) -> None:
        skip = {"host", "content-length", "connection", "transfer-encoding"}
        request = self._client.build_request(
            req.method,
            req.target,
            content=req.body,
            headers={k: v for k, v in req.headers.items() if k not in skip},
        )
        response = await self._client.send(request, stream=True)
        try:
            keep = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in {"content-length", "connection", "transfer-encoding"}
            }
            w.write(head(response.status_code, keep))
            async for chunk in response.aiter_raw():
                w.write(chunk)
                await w.drain()
        finally:
            await response.aclose()

    def lying_length(self, announced: int = 5 * 1024**3) -> Action:
        """Forward to the emulator, but announce ``announced`` bytes (5 GiB) and close after the
        real body: the client waits for bytes that never come, until the connection ends."""

        async def act(req: Req, w: asyncio.StreamWriter) -> None:
            skip = {"host", "content-length", "connection", "transfer-encoding"}
            got = await self._client.request(
                req.method,
                req.target,
                content=req.body,
                headers={k: v for k, v in req.headers.items() if k not in skip},
            )
            ctype = got.headers.get("content-type", "application/json")
            w.write(
                head(got.status_code, {"Content-Type": ctype, "Content-Length": str(announced)})
                + got.content
            )
            await w.drain()

        return act

    # -- minted chats ---------------------------------------------------------------------------

    def signature_body(self, text: str) -> bytes:
        keys = self.upstream.state.keys
        return json.dumps(
            {
                "text": text,
                "signature": keys.sign("ecdsa", text),
                "signing_address": keys.address("ecdsa"),
                "signing_algo": "ecdsa",
            }
        ).encode()

    def mint_chat(self, make_body: Callable[[dict[str, Any]], tuple[str, bytes, bytes]]) -> Action:
        """Answer a chat with ``make_body(request_json) -> (chat_id, body_sent, body_signed)``;
        its signature (by the attested key) covers the request and ``body_signed``."""

        async def act(req: Req, w: asyncio.StreamWriter) -> None:
            chat_id, sent, signed = make_body(json.loads(req.body))
            sha = hashlib.sha256
            self.signed[chat_id] = f"{sha(req.body).hexdigest()}:{sha(signed).hexdigest()}"
            await answer(200, sent)(req, w)

        return act
