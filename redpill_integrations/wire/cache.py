"""A bounded TTL cache with single-flight, for threads and for asyncio tasks.

``get_or_compute`` (threads) and ``aget_or_compute`` (tasks) return a fresh cached value, or run
``compute`` once per key while every concurrent caller for that key waits for the same run: 100
concurrent first calls cause one computation. The value is then kept for ``ttl(value)`` seconds
(``<= 0``: not kept). Threads share one in-flight run per key; tasks share one per key and event
loop. A thread and a task racing on the same cold key may each compute once (documented limit);
both then fill the same cache.

Values are never mutated here; callers store immutable objects.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from typing import Any

__all__ = ["SingleFlightCache"]


class SingleFlightCache:
    def __init__(
        self, *, max_entries: int = 256, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_entries
        self._now = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._threads: dict[Hashable, Future[Any]] = {}
        self._tasks: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}

    def _fresh(self, key: Hashable) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self._now() >= expires:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def _store(self, key: Hashable, value: Any, ttl: Callable[[Any], float]) -> None:
        seconds = ttl(value)
        with self._lock:
            if seconds > 0:
                self._entries[key] = (self._now() + seconds, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)

    def peek(self, key: Hashable) -> Any:
        with self._lock:
            return self._fresh(key)[1]

    def invalidate(self, key: Hashable | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def get_or_compute(
        self, key: Hashable, compute: Callable[[], Any], ttl: Callable[[Any], float]
    ) -> Any:
        with self._lock:
            hit, value = self._fresh(key)
            if hit:
                return value
            running = self._threads.get(key)
            if running is None:
                mine: Future[Any] = Future()
                self._threads[key] = mine
        if running is not None:
            return running.result()
        try:
            value = compute()
            self._store(key, value, ttl)
            mine.set_result(value)
            return value
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._threads.pop(key, None)

    async def aget_or_compute(
        self,
        key: Hashable,
        compute: Callable[[], Awaitable[Any]],
        ttl: Callable[[Any], float],
    ) -> Any:
        loop = asyncio.get_running_loop()
        loop_key = (id(loop), key)
        while True:
            with self._lock:
                hit, value = self._fresh(key)
                if hit:
                    return value
                running = self._tasks.get(loop_key)
                if running is None:
                    mine: asyncio.Future[Any] = loop.create_future()
                    self._tasks[loop_key] = mine
                    break
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if running.cancelled():
                    continue  # the task computing it was cancelled, not us: take over
                raise
        try:
            value = await compute()
        except asyncio.CancelledError:
            mine.cancel()
            raise
        except BaseException as exc:
            mine.set_exception(exc)
            mine.exception()  # mark retrieved: waiters may be gone
            raise
        else:
            self._store(key, value, ttl)
            mine.set_result(value)
            return value
        finally:
            with self._lock:
                self._tasks.pop(loop_key, None)
