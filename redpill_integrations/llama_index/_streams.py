"""Making a consumer's early stop reach the verified stream, through llama-index's wrapper.

llama-index's ``llm_chat_callback`` wraps the generator of ``_stream_chat`` in its own and does
not close ours when the consumer stops early (ours would then be finalized by the garbage
collector, long after the receipt should have been written). The verified stream itself is the
adapter core's (``VerifiedCalls.stream``, registered here with :func:`register`);

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

__all__ = ["aclosing", "closing", "collecting", "register"]

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


def register(stream: Any) -> None:
    """Let the enclosing :func:`collecting` block (if any) close ``stream`` with its consumer."""
    started = _STARTED.get()
    if started is not None:
        started.append(stream)


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
