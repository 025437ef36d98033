"""Bounded decoding and body budgets: bombs stop at the cap, slow drips at the deadline."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from redpill_integrations.results import Reason
from redpill_integrations.wire.decoding import BoundedDecoder, DecodeOverflow
from redpill_integrations.wire.flow import Fetch, Fetched, FetchFailed
from redpill_integrations.wire.http import (
    Endpoints,
    make_async_client,
    make_client,
    send_async,
    send_sync,
)

BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KiB that inflate to 64 MiB
ENDPOINTS = Endpoints(base_url="https://a.test/v1", api_key=None, extra_urls=())


def test_gzip_and_deflate_round_trip_and_bomb_overflows() -> None:
    for encoding, packed in (
        ("gzip", gzip.compress(b"hello" * 100)),
        ("deflate", zlib.compress(b"hello" * 100)),
    ):
        d = BoundedDecoder([encoding], 1000)
        out = b"".join(d.decode(packed[i : i + 3]) for i in range(0, len(packed), 3)) + d.flush()
        assert out == b"hello" * 100
    with pytest.raises(DecodeOverflow):
        BoundedDecoder(["gzip"], 1 << 20).decode(BOMB)


@pytest.mark.parametrize(
    ("encodings", "pack"),
    [
        # a raw deflate stream (no zlib header): httpx falls back to raw, so must we
        (["deflate"], lambda b: zlib.compress(b)[2:-4]),
        # "gzip, deflate": gzip applied first, so deflate is undone first (as httpx does)
        (["gzip", "deflate"], lambda b: zlib.compress(gzip.compress(b))),
    ],
)
def test_decoding_matches_httpx(encodings: list[str], pack: Any) -> None:
    body = b'{"id": "chatcmpl-1", "choices": []}' * 20
    packed = pack(body)
    d = BoundedDecoder(encodings, 1 << 20)
    out = b"".join(d.decode(packed[i : i + 7]) for i in range(0, len(packed), 7)) + d.flush()
    consumer = httpx.Response(
        200, headers={"content-encoding": ", ".join(encodings)}, content=packed
    )
    assert out == consumer.content == body


class Drip(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        for _ in range(200):
            time.sleep(0.02)
            yield b"a"


class ADrip(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        import asyncio

        for _ in range(200):
            await asyncio.sleep(0.02)
            yield b"a"


def bomb(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(BOMB))


def fetch(total: float | None = None) -> Fetch:
    return Fetch(ENDPOINTS.build("GET", "https://a.test/v1/x"), 1 << 20, total=total)


def test_sync_bomb_is_too_large_and_drip_times_out() -> None:
    got = send_sync(make_client(httpx.MockTransport(bomb)), ENDPOINTS, fetch())
    assert isinstance(got, FetchFailed) and got.reason is Reason.RESPONSE_TOO_LARGE
    client = make_client(httpx.MockTransport(lambda r: httpx.Response(200, stream=Drip())))
    start = time.monotonic()
    got = send_sync(client, ENDPOINTS, fetch(total=0.3))
    assert isinstance(got, FetchFailed) and got.reason is Reason.TIMEOUT
    assert time.monotonic() - start < 1.0


async def test_async_bomb_is_too_large_and_drip_times_out() -> None:
    got = await send_async(make_async_client(httpx.MockTransport(bomb)), ENDPOINTS, fetch())
    assert isinstance(got, FetchFailed) and got.reason is Reason.RESPONSE_TOO_LARGE
    client = make_async_client(httpx.MockTransport(lambda r: httpx.Response(200, stream=ADrip())))
    start = time.monotonic()
    got = await send_async(client, ENDPOINTS, fetch(total=0.3))
    assert isinstance(got, FetchFailed) and got.reason is Reason.TIMEOUT
    assert time.monotonic() - start < 1.0


def test_other_origins_are_refused_without_a_request() -> None:
    calls: list[httpx.Request] = []
    client = make_client(httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)))
    got = send_sync(client, ENDPOINTS, Fetch(ENDPOINTS.build("GET", "https://evil.test/x"), 10))
    assert isinstance(got, FetchFailed) and got.reason is Reason.UPSTREAM_HTTP_ERROR
    assert calls == []
    ok = send_sync(client, ENDPOINTS, fetch())
    assert isinstance(ok, Fetched) and ok.status_code == 200
