"""Verified streams: every chunk passes at once, then one trailing response carries the verdict.

Two layers, because llama-index's ``llm_chat_callback`` wraps the generator of ``_stream_chat``
in its own and does not close ours when the consumer stops early (ours would then be finalized by
the garbage collector, long after the receipt should have been written):

* :func:`verified_stream` / :func:`averified_stream` (inside the callback wrapper, from
  ``_stream_chat`` / ``_astream_chat``): pass chunks, verify at the end, or on an early stop close
  the response, keep the receipt (``STREAM_INCOMPLETE``) and dispatch the event; a stream that
  broke off (connection reset, unparsable event) raises :class:`ResponseUnreadable` carrying that
  verdict and what was delivered, ``from`` the original error;
* :func:`closing` / :func:`aclosing` (around the public ``stream_chat`` & co.): when the consumer
  closes the stream (``break`` then release, ``close()``, ``aclose()``), close the verified streams
  that the call started, so their ``finally`` runs now. They find them through a context variable
  that :func:`collecting` sets for the duration of the call that creates them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Generator, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatResponse

from redpill_integrations.errors import ResponseUnreadable
from redpill_integrations.llama_index.calls import Call, trailing_response
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire.capture import CapturedExchange

__all__ = ["aclosing", "averified_stream", "closing", "collecting", "verified_stream"]

T = TypeVar("T")
_Started = list[Generator[ChatResponse, None, None] | AsyncGenerator[ChatResponse, None]]
_STARTED: ContextVar[_Started | None] = ContextVar("redpill_started_streams", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[_Started]:
    """Collect the verified streams created while the block runs."""
    started: _Started = []
    token = _STARTED.set(started)
    try:
        yield started
    finally:
        _STARTED.reset(token)


def _register(stream: Any) -> None:
    started = _STARTED.get()
    if started is not None:
        started.append(stream)


def verified_stream(
    inner: Generator[ChatResponse, None, None], call: Call
) -> Generator[ChatResponse, None, None]:
    def gen() -> Generator[ChatResponse, None, None]:
        last: ChatResponse | None = None
        try:
            for chunk in inner:
                last = chunk
                yield chunk
        except BaseException as exc:  # stopped early, or the stream failed: keep the receipt
            inner.close()
            call.close_response()
            stopped = call.stopped(exc, last is not None)
            if stopped is None:
                raise
            exchange, reason = stopped
            error = _ended(call, exchange, reason, call.verifier.verify(exchange), exc, last)
            if error is None:
                raise
            raise error from exc
        yield call.conclude(trailing_response(last), call.verify())

    stream = gen()
    _register(stream)
    return stream


def averified_stream(
    inner: AsyncGenerator[ChatResponse, None], call: Call
) -> AsyncGenerator[ChatResponse, None]:
    async def gen() -> AsyncGenerator[ChatResponse, None]:
        last: ChatResponse | None = None
        try:
            async for chunk in inner:
                last = chunk
                yield chunk
        except BaseException as exc:
            await inner.aclose()
            await call.aclose_response()
            stopped = call.stopped(exc, last is not None)
            if stopped is None:
                raise
            exchange, reason = stopped
            result = await call.verifier.averify(exchange)
            error = _ended(call, exchange, reason, result, exc, last)
            if error is None:
                raise
            raise error from exc
        yield call.conclude(trailing_response(last), await call.averify())

    stream = gen()
    _register(stream)
    return stream


def _ended(
    call: Call,
    exchange: CapturedExchange | None,
    reason: Reason | None,
    result: VerificationResult,
    exc: BaseException,
    last: ChatResponse | None,
) -> ResponseUnreadable | None:
    """Record a stream that ended early; the error to raise if it broke off (else ``exc`` is)."""
    if exchange is None or reason is None:
        call.abandon(result)
        return None
    response = trailing_response(last) if last is not None else None
    return call.unreadable(exchange, reason, result, exc, response)


def closing(outer: Generator[T, None, None], started: _Started) -> Generator[T, None, None]:
    try:
        yield from outer
    finally:
        for stream in started:
            if isinstance(stream, Generator):
                stream.close()


async def aclosing(outer: AsyncGenerator[T, None], started: _Started) -> AsyncGenerator[T, None]:
    try:
        async for item in outer:
            yield item
    finally:
        await outer.aclose()
        for stream in started:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
