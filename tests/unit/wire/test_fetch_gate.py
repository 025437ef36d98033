"""The verifier's own requests: a small pool, at most ``FETCH_CONCURRENCY`` of them in flight.

httpcore's pool bookkeeping scans every pooled connection on each request and each close, so
one connection per concurrent call made each signature fetch dearer as concurrency grew
(docs/performance.md). These tests pin the bound and its fail-closed edge: a fetch that never gets
its turn within its budget is a ``TIMEOUT``, never a pass.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CapturedExchange, RedpillVerifier
from redpill_integrations.wire.flow import Fetch, Fetched, FetchFailed
from redpill_integrations.wire.http import (
    FETCH_CONCURRENCY,
    FETCH_LIMITS,
    Endpoints,
    make_async_client,
    send_async,
)

BASE = "https://a.test/v1"
ENDPOINTS = Endpoints(base_url=BASE, api_key=None, extra_urls=())
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class InFlight:
    """An async mock handler that holds each request a moment and counts how many overlap."""

    def __init__(self, status: int = 200) -> None:
        self.now = 0
        self.peak = 0
        self.seen = 0
        self.status = status

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.seen += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.005)
        finally:
            self.now -= 1
        return httpx.Response(self.status, content=b"ok")


def fetch(total: float = 5.0) -> Fetch:
    return Fetch(ENDPOINTS.build("GET", f"{BASE}/signature/x", timeout=total), 1000, total=total)


async def test_a_gate_bounds_the_fetches_in_flight_and_every_one_completes() -> None:
    handler = InFlight()
    client = make_async_client(httpx.MockTransport(handler))
    gate = asyncio.Semaphore(3)
    got = await asyncio.gather(*(send_async(client, ENDPOINTS, fetch(), gate) for _ in range(12)))
    assert handler.peak == 3 and handler.seen == 12
    assert all(isinstance(g, Fetched) and g.status_code == 200 and g.body == b"ok" for g in got)


async def test_a_fetch_that_never_gets_its_turn_is_a_timeout_not_a_pass() -> None:
    handler = InFlight()
    client = make_async_client(httpx.MockTransport(handler))
    gate = asyncio.Semaphore(1)
    await gate.acquire()  # held elsewhere for longer than the fetch's budget
    got = await send_async(client, ENDPOINTS, fetch(total=0.05), gate)
    assert isinstance(got, FetchFailed) and got.reason is Reason.TIMEOUT
    assert handler.seen == 0  # it never reached the server
    gate.release()
    assert isinstance(await send_async(client, ENDPOINTS, fetch(), gate), Fetched)


def test_the_fetch_pool_keeps_alive_every_connection_the_gate_lets_through() -> None:
    assert FETCH_LIMITS.max_connections == FETCH_CONCURRENCY
    assert FETCH_LIMITS.max_keepalive_connections == FETCH_CONCURRENCY
    assert 4 <= FETCH_CONCURRENCY <= 64


async def test_concurrent_verifications_keep_at_most_fetch_concurrency_requests_in_flight() -> None:
    handler = InFlight(status=400)  # every fetch refused (not retried): each verdict fails closed
    v = RedpillVerifier(
        base_url=BASE,
        api_key="sk-test",
        async_transport=httpx.MockTransport(handler),
        asleep=lambda s: asyncio.sleep(0),
    )
    exchanges = [
        CapturedExchange(
            tag=None,
            url=f"{BASE}/chat/completions",
            request_body=b'{"model": "phala/m", "messages": []}',
            response_body=b'{"id": "chatcmpl-%d"}' % i,
            status_code=200,
            streamed=False,
            complete=True,
            chat_id=f"chatcmpl-{i}",
            model="phala/m",
            started_at=NOW,
            finished_at=NOW,
        )
        for i in range(3 * FETCH_CONCURRENCY)
    ]
    results = await asyncio.gather(*(v.averify(e) for e in exchanges))
    await v.aclose()
    assert handler.peak == FETCH_CONCURRENCY
    assert handler.seen >= len(exchanges)
    assert {r.status for r in results} == {Status.UNVERIFIABLE}
