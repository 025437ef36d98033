"""A wall-clock bound on blocking socket I/O, from connect to last byte (sync only).

httpx's timeouts are per operation: a server that sends one header byte a second never trips a
30 s read timeout, and ``client.send`` only returns once the headers are complete. The transports
built here (:class:`DeadlineTransport`) use a network backend whose every ``connect``/``read``/
``write``/TLS handshake is limited to what is left of the deadline set with :func:`deadline_in`
in the current context; once it has passed, the operation raises the matching ``httpcore``
timeout (which httpx reports as ``httpx.ConnectTimeout``/``ReadTimeout``/``WriteTimeout``).
Without a deadline set, the backend behaves exactly like httpcore's own.

For connections opened by someone else's transport, :func:`cut_off_after` shuts the socket down
when a block overruns (a shared watchdog thread). The async drivers use ``asyncio.timeout``
instead (cancellation interrupts a pending read).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

__all__ = ["DeadlineTransport", "cut_off_after", "deadline_in"]

_DEADLINE: ContextVar[float | None] = ContextVar("redpill_io_deadline", default=None)


@contextlib.contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Bound every socket operation of :class:`DeadlineTransport` in this context to end within
    ``seconds`` from now (``None``: no bound). Nested bounds keep the earlier end."""
    outer = _DEADLINE.get()
    end = None if seconds is None else time.monotonic() + seconds
    if outer is not None and (end is None or outer < end):
        end = outer
    token = _DEADLINE.set(end)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _clamp(timeout: float | None, expired: type[Exception]) -> float | None:
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise expired("wall-clock deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        t = _clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, t))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        t = _clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, t, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - unix sockets are not configurable here
        t = _clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, t, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - used by httpcore retries only
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections honour :func:`deadline_in`."""

    def __init__(self, *, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )


class _Watchdog:
    """One daemon thread that runs callbacks at their deadlines (for bounds on sockets we did not
    open ourselves: a user's own ``httpx.Client`` under a capturing transport)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._ids = itertools.count()
        self._cancelled: set[int] = set()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, fn: Callable[[], None]) -> int:
        with self._cond:
            handle = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + seconds, handle, fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="redpill-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return handle

    def disarm(self, handle: int) -> None:
        with self._cond:
            if any(h == handle for _, h, _ in self._heap):
                self._cancelled.add(handle)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, handle, fn = self._heap[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if handle in self._cancelled:
                    self._cancelled.discard(handle)
                    continue
            try:
                fn()
            except Exception:  # noqa: S112 - a failed cut-off leaves the per-read timeouts
                continue


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def cut_off_after(seconds: float, stream: Any) -> Iterator[Callable[[], bool]]:
    """Shut ``stream``'s socket down (``response.extensions["network_stream"]``) if the block
    has not finished within ``seconds``; a blocked read then ends at once. Yields ``fired()``.
    Without a socket to shut (not an httpcore transport) nothing is armed."""
    sock = stream.get_extra_info("socket") if stream is not None else None
    fired = threading.Event()
    if not isinstance(sock, socket.socket):
        yield fired.is_set
        return

    lock = threading.Lock()
    done = [False]

    def cut() -> None:
        with lock:  # never after the block ended: the connection may be back in its pool
            if not done[0]:
                fired.set()
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's (also TLS)

    handle = _WATCHDOG.arm(seconds, cut)
    try:
        yield fired.is_set
    finally:
        with lock:
            done[0] = True
        _WATCHDOG.disarm(handle)
