"""HTTP plumbing for the fetchers: request building, the API-key rule, clients, capped reads.

Rules enforced here, in one place:

* **The API key goes only to the base URL's origin.** :class:`Endpoints` adds
  ``Authorization: Bearer …`` only to requests whose scheme/host/port equal the base URL's; PCCS,
  NRAS and JWKS requests never carry it. Internal clients never follow redirects, so a key-bearing
  request is never replayed to another origin (a 3xx is just an unusable answer).
* **Only configured hosts are contacted.** Every request is checked against the allowed origins
  (base URL, PCCS, NRAS, JWKS) before it is sent; nothing taken from a server response is fetched.
* **Every body is size-capped** while it is read (``Fetch.max_bytes``, after bounded decoding, so a
  decompression bomb stops at the cap) and every request has connect/read timeouts plus a
  wall-clock budget from connect to last byte (``Fetch.total``: a slow drip, of the headers or of
  the body, ends in ``TIMEOUT``). Async: ``asyncio.timeout``; sync: the default transport's
  sockets honour :func:`~.deadline.deadline_in` (an injected ``transport`` bounds its own I/O).
* **The key never leaks**: it is held as ``SecretStr`` and failures are reported by exception type
  and host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import ssl
import time
import zlib
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from redpill_integrations.results import Reason
from redpill_integrations.wire.deadline import DeadlineTransport, deadline_in
from redpill_integrations.wire.decoding import DecodeOverflow, UnsupportedEncoding, decoder_for
from redpill_integrations.wire.flow import Fetch, Fetched, FetchFailed, Flow

__all__ = [
    "CHAT_LIMITS",
    "DEFAULT_TIMEOUT",
    "FETCH_CONCURRENCY",
    "FETCH_LIMITS",
    "FETCH_POOL_SIZE",
    "AsyncFetchers",
    "Budget",
    "Endpoints",
    "default_async_transport",
    "default_transport",
    "is_loopback",
    "make_async_client",
    "make_client",
    "origin",
    "send_async",
    "send_sync",
]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
#: The OpenAI SDK's own pool limits: 200 concurrent calls must not queue behind httpx's default 100.
CHAT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
#: The verifier's own pools (signatures, attestation): at most this many connections each, all kept
#: alive. httpcore scans every pooled connection on each request and each close (quadratic in the
#: idle ones), so one big pool made every fetch dearer as concurrency grew, and closing busy
#: connections beyond its keep-alive limit re-opened one for most fetches; see
#: docs/performance.md.
FETCH_POOL_SIZE = 16
FETCH_LIMITS = httpx.Limits(
    max_connections=FETCH_POOL_SIZE, max_keepalive_connections=FETCH_POOL_SIZE
)
#: The verifier's own async requests in flight at once, per event loop, over as many pools of
#: FETCH_POOL_SIZE as they need: enough not to throttle fetches that wait on a real network.
FETCH_CONCURRENCY = 256


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~80 ms; one context is shared (it is thread-safe), pools are not.
    return httpx.create_ssl_context()


def default_transport(limits: httpx.Limits = CHAT_LIMITS) -> httpx.HTTPTransport:
    """A fresh inner transport (fetchers, capturing clients): its own connection pool (the SDK's
    limits unless told), the shared TLS context, sockets bounded by
    :func:`~.deadline.deadline_in`."""
    return DeadlineTransport(verify=_ssl_context(), limits=limits)


def default_async_transport(limits: httpx.Limits = CHAT_LIMITS) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(verify=_ssl_context(), limits=limits)


_FAILURES = (httpx.HTTPError, httpx.StreamError, OSError)


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, u.host, port)


def is_loopback(url: str | httpx.URL) -> bool:
    """True when ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = httpx.URL(url).host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Budget:
    """A total time budget on an injectable monotonic clock (one per verification step)."""

    def __init__(self, seconds: float, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._end = monotonic() + seconds

    def remaining(self) -> float:
        return self._end - self._monotonic()


class Endpoints:
    """Builds every request the fetchers send; pure (no I/O)."""

    def __init__(
        self, *, base_url: str, api_key: SecretStr | None, extra_urls: tuple[str, ...]
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_origin = origin(self.base_url)
        self._key = api_key
        self.allowed = frozenset({self.base_origin, *(origin(u) for u in extra_urls)})

    def __repr__(self) -> str:
        return f"Endpoints(base_url={self.base_url!r}, key={'set' if self._key else 'none'})"

    def build(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Request:
        hdrs = {"Accept-Encoding": "identity", **(headers or {})}
        # One parse: httpx.URL(url, params=...) parses the URL, then again to merge the query.
        target = httpx.URL(f"{url}?{urlencode(params)}" if params else url)
        if self._key is not None and origin(target) == self.base_origin:
            hdrs["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        extensions = {}
        if timeout is not None:
            t = max(0.05, timeout)
            extensions["timeout"] = httpx.Timeout(
                connect=min(t, DEFAULT_TIMEOUT.connect or t),
                read=min(t, DEFAULT_TIMEOUT.read or t),
                write=min(t, DEFAULT_TIMEOUT.write or t),
                pool=min(t, DEFAULT_TIMEOUT.pool or t),
            ).as_dict()
        return httpx.Request(method, target, content=content, headers=hdrs, extensions=extensions)

    def fetch(
        self, budget: Budget, method: str, url: str, max_bytes: int, **kw: Any
    ) -> Flow[Fetched | FetchFailed]:
        """One request within ``budget``: a ``TIMEOUT`` failure once the budget is spent."""
        left = budget.remaining()
        if left <= 0:
            return FetchFailed(Reason.TIMEOUT, "deadline passed before contacting " + url)
        answer: Fetched | FetchFailed = yield Fetch(
            self.build(method, url, timeout=left, **kw), max_bytes, total=left
        )
        return answer

    def refuse(self, request: httpx.Request) -> FetchFailed | None:
        """A failure when ``request`` targets a host outside the configured ones."""
        if origin(request.url) in self.allowed:
            return None
        return FetchFailed(Reason.UPSTREAM_HTTP_ERROR, f"refused host {request.url.host}")


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The fetchers' own client. Its default pool (:data:`FETCH_LIMITS`) keeps alive every
    connection the fetches in flight use (:data:`FETCH_CONCURRENCY`): a pool that closes busy
    connections re-opens one for most signature lookups under load."""
    return httpx.Client(
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        transport=transport if transport is not None else default_transport(FETCH_LIMITS),
    )


def make_async_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        transport=transport if transport is not None else default_async_transport(FETCH_LIMITS),
    )


def _failure(exc: BaseException, request: httpx.Request) -> FetchFailed:
    host = request.url.host
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return FetchFailed(Reason.TIMEOUT, f"timeout talking to {host}")
    return FetchFailed(Reason.UPSTREAM_HTTP_ERROR, f"{type(exc).__name__} talking to {host}")


def _too_large(fetch: Fetch) -> FetchFailed:
    return FetchFailed(
        Reason.RESPONSE_TOO_LARGE, f"body from {fetch.request.url.host} over {fetch.max_bytes} B"
    )


class _Body:
    """Accumulates a response body: bounded decoding, size cap, wall-clock deadline (sans-I/O)."""

    def __init__(self, fetch: Fetch, headers: httpx.Headers) -> None:
        self.fetch = fetch
        self.buf = bytearray()
        self.deadline = None if fetch.total is None else time.monotonic() + fetch.total
        self.decoder = decoder_for(headers, fetch.max_bytes)  # may raise UnsupportedEncoding

    def feed(self, raw: bytes) -> FetchFailed | None:
        try:
            self.buf += self.decoder.decode(raw) if self.decoder is not None else raw
        except DecodeOverflow:
            return _too_large(self.fetch)
        if len(self.buf) > self.fetch.max_bytes:
            return _too_large(self.fetch)
        if self.deadline is not None and time.monotonic() > self.deadline:
            return FetchFailed(Reason.TIMEOUT, f"{self.fetch.request.url.host} too slow")
        return None

    def finish(self, response: httpx.Response) -> Fetched | FetchFailed:
        if self.decoder is not None:
            try:
                self.buf += self.decoder.flush()
            except DecodeOverflow:
                return _too_large(self.fetch)
        return Fetched(response.status_code, response.headers, bytes(self.buf))


def _bad_body(exc: Exception, fetch: Fetch) -> FetchFailed:
    return FetchFailed(
        Reason.UPSTREAM_HTTP_ERROR, f"undecodable body from {fetch.request.url.host}: {exc}"
    )


def send_sync(client: httpx.Client, endpoints: Endpoints, fetch: Fetch) -> Fetched | FetchFailed:
    refused = endpoints.refuse(fetch.request)
    if refused is not None:
        return refused
    try:
        with deadline_in(fetch.total):  # connect to last byte, headers included
            response = client.send(fetch.request, stream=True, follow_redirects=False)
            try:
                body = _Body(fetch, response.headers)
                for chunk in cast(httpx.SyncByteStream, response.stream):  # raw, as received
                    failed = body.feed(chunk)
                    if failed is not None:
                        return failed
                return body.finish(response)
            finally:
                response.close()
    except (UnsupportedEncoding, zlib.error) as exc:
        return _bad_body(exc, fetch)
    except _FAILURES as exc:
        return _failure(exc, fetch.request)


_NO_GATE = contextlib.nullcontext()


async def send_async(
    client: httpx.AsyncClient,
    endpoints: Endpoints,
    fetch: Fetch,
    gate: asyncio.Semaphore | None = None,
) -> Fetched | FetchFailed:
    """``fetch`` through ``client``, within its budget; with a ``gate``, only while holding it
    (the wait counts against the budget: a fetch that never gets its turn is a ``TIMEOUT``)."""
    refused = endpoints.refuse(fetch.request)
    if refused is not None:
        return refused
    try:
        async with asyncio.timeout(fetch.total), gate or _NO_GATE:
            response = await client.send(fetch.request, stream=True, follow_redirects=False)
            try:
                body = _Body(fetch, response.headers)
                async for chunk in cast(httpx.AsyncByteStream, response.stream):
                    failed = body.feed(chunk)
                    if failed is not None:
                        return failed
                return body.finish(response)
            finally:
                await response.aclose()
    except (UnsupportedEncoding, zlib.error) as exc:
        return _bad_body(exc, fetch)
    except (*_FAILURES, TimeoutError) as exc:
        return _failure(exc, fetch.request)


class _Pool:
    __slots__ = ("busy", "client")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.busy = 0


class AsyncFetchers:
    """The verifier's own async clients in one event loop: fetches go to the first pool with a
    free connection (``pool_size`` each), a new pool (``make()``) only when all are busy, and at
    most ``limit`` fetches are in flight in all; the rest wait their turn within their budget (a
    fetch that never gets one is a ``TIMEOUT``). Each pool's bookkeeping stays small however many
    calls are in flight (see :data:`FETCH_POOL_SIZE`)."""

    def __init__(
        self,
        make: Callable[[], httpx.AsyncClient],
        *,
        pool_size: int = FETCH_POOL_SIZE,
        limit: int = FETCH_CONCURRENCY,
    ) -> None:
        self._make = make
        self._pool_size = pool_size
        self._gate = asyncio.Semaphore(limit)
        self._pools: list[_Pool] = []

    @property
    def pools(self) -> int:
        return len(self._pools)

    def _free_pool(self) -> _Pool:
        for pool in self._pools:
            if pool.busy < self._pool_size:
                return pool
        pool = _Pool(self._make())
        self._pools.append(pool)
        return pool

    async def send(self, endpoints: Endpoints, fetch: Fetch) -> Fetched | FetchFailed:
        refused = endpoints.refuse(fetch.request)
        if refused is not None:
            return refused
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(fetch.total):
                await self._gate.acquire()
        except TimeoutError:
            return FetchFailed(Reason.TIMEOUT, f"no turn to contact {fetch.request.url.host}")
        try:
            if fetch.total is not None:  # the wait for a turn counts against the budget
                fetch = dataclasses.replace(fetch, total=fetch.total - (loop.time() - start))
            pool = self._free_pool()
            pool.busy += 1
            try:
                return await send_async(pool.client, endpoints, fetch)
            finally:
                pool.busy -= 1
        finally:
            self._gate.release()

    async def aclose(self) -> None:
        pools, self._pools = self._pools, []
        for pool in pools:
            await pool.client.aclose()
