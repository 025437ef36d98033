"""The verifier's own requests: small pools (``FETCH_POOL_SIZE``), as many as the fetches in flight
need, at most ``FETCH_CONCURRENCY`` fetches in flight in all.

httpcore's pool bookkeeping scans every pooled connection on each request and each close, so
one big pool made each signature fetch dearer as concurrency grew (docs/performance.md). These
tests pin the bounds, that fetches waiting on the network are not throttled below them, and the
fail-closed edge: a fetch that never gets its turn within its budget is a ``TIMEOUT``, never a pass.
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
    FETCH_POOL_SIZE,
    AsyncFetchers,
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


def test_a_fetch_pool_keeps_alive_every_connection_it_may_open() -> None:
    assert FETCH_LIMITS.max_connections == FETCH_POOL_SIZE
    assert FETCH_LIMITS.max_keepalive_connections == FETCH_POOL_SIZE
    assert 4 <= FETCH_POOL_SIZE <= 32 and FETCH_CONCURRENCY >= 200


async def test_fetchers_open_a_pool_only_when_all_are_busy_and_cap_the_fetches_in_flight() -> None:
    total = InFlight()
    per_pool: list[InFlight] = []

    def make() -> httpx.AsyncClient:
        mine = InFlight()
        per_pool.append(mine)

        async def handle(request: httpx.Request) -> httpx.Response:
            await mine(request)
            return await total(request)

        return make_async_client(httpx.MockTransport(handle))

    fetchers = AsyncFetchers(make, pool_size=3, limit=7)
    got = await asyncio.gather(*(fetchers.send(ENDPOINTS, fetch()) for _ in range(20)))
    assert all(isinstance(g, Fetched) and g.body == b"ok" for g in got)
    assert total.peak == 7 and total.seen == 20
    assert fetchers.pools == 3 and all(p.peak <= 3 for p in per_pool)
    await asyncio.gather(*(fetchers.send(ENDPOINTS, fetch()) for _ in range(3)))
    assert fetchers.pools == 3  # an idle pool is reused, not another opened
    await fetchers.aclose()


async def test_fetchers_time_out_a_fetch_that_gets_no_turn_and_refuse_foreign_hosts() -> None:
    handler = InFlight()
    fetchers = AsyncFetchers(lambda: make_async_client(httpx.MockTransport(handler)), limit=1)
    fetchers._gate = asyncio.Semaphore(0)  # every turn taken for longer than the budget
    got = await fetchers.send(ENDPOINTS, fetch(total=0.05))
    assert isinstance(got, FetchFailed) and got.reason is Reason.TIMEOUT
    foreign = Fetch(ENDPOINTS.build("GET", "https://evil.test/x", timeout=1.0), 10, total=1.0)
    refused = await fetchers.send(ENDPOINTS, foreign)
    assert isinstance(refused, FetchFailed) and refused.reason is Reason.UPSTREAM_HTTP_ERROR
    assert handler.seen == 0 and fetchers.pools == 0


async def test_concurrent_verifications_put_exactly_fetch_concurrency_fetches_in_flight() -> None:
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
    assert handler.peak == FETCH_CONCURRENCY  # all that may go out at once do, no more
    assert handler.seen >= len(exchanges)
    assert {r.status for r in results} == {Status.UNVERIFIABLE}
