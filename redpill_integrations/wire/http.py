"""HTTP plumbing for the fetchers: request building, the API-key rule, clients, capped reads.

Rules enforced here, in one place:

* **The API key goes only to the base URL's origin.** :class:`Endpoints` adds
  ``Authorization: Bearer …`` only to requests whose scheme/host/port equal the base URL's; PCCS,
  NRAS and JWKS requests never carry it. Internal clients never follow redirects, so a key-bearing
  request is never replayed to another origin (a 3xx is just an unusable answer).
* **Only configured hosts are contacted.** Every request is checked against the allowed origins
  (base URL, PCCS, NRAS, JWKS) before it is sent; nothing taken from a server response is fetched.
* **Every body is size-capped** while it is read (``Fetch.max_bytes``) and every request has
  connect/read timeouts (lowered further by the flows to fit their total deadline).
* **The key never leaks**: it is held as ``SecretStr`` and failures are reported by exception type
  and host only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from redpill_integrations.results import Reason
from redpill_integrations.wire.flow import Fetch, Fetched, FetchFailed, Flow

__all__ = [
    "DEFAULT_TIMEOUT",
    "Budget",
    "Endpoints",
    "make_async_client",
    "make_client",
    "origin",
    "send_async",
    "send_sync",
]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
_FAILURES = (httpx.HTTPError, httpx.StreamError, OSError)


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, u.host, port)


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
        target = httpx.URL(url, params=params)
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
            self.build(method, url, timeout=left, **kw), max_bytes
        )
        return answer

    def refuse(self, request: httpx.Request) -> FetchFailed | None:
        """A failure when ``request`` targets a host outside the configured ones."""
        if origin(request.url) in self.allowed:
            return None
        return FetchFailed(Reason.UPSTREAM_HTTP_ERROR, f"refused host {request.url.host}")


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False, transport=transport)


def make_async_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False, transport=transport)


def _failure(exc: BaseException, request: httpx.Request) -> FetchFailed:
    host = request.url.host
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailed(Reason.TIMEOUT, f"timeout talking to {host}")
    return FetchFailed(Reason.UPSTREAM_HTTP_ERROR, f"{type(exc).__name__} talking to {host}")


def _too_large(fetch: Fetch) -> FetchFailed:
    return FetchFailed(
        Reason.RESPONSE_TOO_LARGE, f"body from {fetch.request.url.host} over {fetch.max_bytes} B"
    )


def send_sync(client: httpx.Client, endpoints: Endpoints, fetch: Fetch) -> Fetched | FetchFailed:
    refused = endpoints.refuse(fetch.request)
    if refused is not None:
        return refused
    try:
        response = client.send(fetch.request, stream=True, follow_redirects=False)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > fetch.max_bytes:
                    return _too_large(fetch)
        finally:
            response.close()
    except _FAILURES as exc:
        return _failure(exc, fetch.request)
    return Fetched(response.status_code, response.headers, bytes(body))


async def send_async(
    client: httpx.AsyncClient, endpoints: Endpoints, fetch: Fetch
) -> Fetched | FetchFailed:
    refused = endpoints.refuse(fetch.request)
    if refused is not None:
        return refused
    try:
        response = await client.send(fetch.request, stream=True, follow_redirects=False)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > fetch.max_bytes:
                    return _too_large(fetch)
        finally:
            await response.aclose()
    except _FAILURES as exc:
        return _failure(exc, fetch.request)
    return Fetched(response.status_code, response.headers, bytes(body))
