"""Sans-I/O flows and their two thin drivers (``docs/architecture.md``, "wire/").

All decision logic of the wire layer (what to fetch, when to retry, what a status code means, what
goes into a receipt) is written once, as generators that *yield effects* and receive their
outcomes, like httpx's ``Auth.auth_flow``::

    def flow() -> Flow[int]:
        answer = yield Fetch(request, max_bytes=1024)     # -> Fetched | FetchFailed
        yield Sleep(0.5)                                  # -> None
        value = yield Shared(key, make=sub_flow, ttl=...) # -> the sub-flow's value (single-flight)
        yield Blocking(fn)                                # -> fn() (a thread, in async)
        return 42

:func:`run_sync` and :func:`run_async` interpret the effects with an ``httpx.Client`` or
``httpx.AsyncClient``; they contain no decisions. Flows never raise for network problems: a failed
fetch is a :class:`FetchFailed` value with a reason code.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Generator, Hashable
from typing import Any, TypeVar

import httpx

from redpill_integrations.results import Reason
from redpill_integrations.wire.cache import SingleFlightCache

__all__ = [
    "Blocking",
    "Effect",
    "Fetch",
    "FetchFailed",
    "Fetched",
    "Flow",
    "Shared",
    "Sleep",
    "run_async",
    "run_sync",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Fetch:
    """Send ``request`` (never following redirects) and read at most ``max_bytes`` of its body
    (decoded), all within ``total`` seconds of wall-clock time when given."""

    request: httpx.Request
    max_bytes: int
    total: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Fetched:
    status_code: int
    headers: httpx.Headers
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class FetchFailed:
    """No usable answer: ``TIMEOUT``, ``UPSTREAM_HTTP_ERROR`` (connection error, reset, refused
    origin) or ``RESPONSE_TOO_LARGE``. ``detail`` never contains secrets (type names and hosts)."""

    reason: Reason
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Shared:
    """Run ``make()`` at most once at a time per ``key`` and cache its value for ``ttl(value)``
    seconds (0 = do not keep; concurrent waiters still share the one run)."""

    key: Hashable
    make: Callable[[], Flow[Any]]
    ttl: Callable[[Any], float]


@dataclasses.dataclass(frozen=True, slots=True)
class Blocking:
    """Local blocking work (receipt writes): run inline by the sync driver, in a thread by async."""

    fn: Callable[[], Any]


Effect = Fetch | Sleep | Shared | Blocking
Flow = Generator[Effect, Any, T]

SendSync = Callable[[Fetch], "Fetched | FetchFailed"]
SendAsync = Callable[[Fetch], Awaitable["Fetched | FetchFailed"]]


def run_sync(
    flow: Flow[T],
    *,
    send: SendSync,
    sleep: Callable[[float], None],
    cache: SingleFlightCache,
) -> T:
    """Drive ``flow`` to completion with blocking I/O."""
    value: Any = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if isinstance(effect, Fetch):
            value = send(effect)
        elif isinstance(effect, Sleep):
            sleep(effect.seconds)
            value = None
        elif isinstance(effect, Shared):
            sub = effect

            def compute(sub: Shared = sub) -> Any:
                return run_sync(sub.make(), send=send, sleep=sleep, cache=cache)

            value = cache.get_or_compute(effect.key, compute, effect.ttl)
        else:
            value = effect.fn()


async def run_async(
    flow: Flow[T],
    *,
    send: SendAsync,
    sleep: Callable[[float], Awaitable[None]],
    cache: SingleFlightCache,
) -> T:
    """Drive ``flow`` to completion in the running event loop."""
    value: Any = None
    while True:
        try:
            effect = flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if isinstance(effect, Fetch):
            value = await send(effect)
        elif isinstance(effect, Sleep):
            await sleep(effect.seconds)
            value = None
        elif isinstance(effect, Shared):
            sub = effect

            async def compute(sub: Shared = sub) -> Any:
                return await run_async(sub.make(), send=send, sleep=sleep, cache=cache)

            value = await cache.aget_or_compute(effect.key, compute, effect.ttl)
        else:
            value = await asyncio.to_thread(effect.fn)
