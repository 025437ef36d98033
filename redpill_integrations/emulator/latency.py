"""Simulated latency: a network round trip per exchange, time to first token, time per token.

All three default to zero (tests stay fast); every wait is an ``asyncio.sleep`` on the server's
loop, never a blocking one. ``network_rtt`` is added once to every HTTP exchange (API, PCCS, NRAS)
before the application sees the request. A chat completion then waits ``time_to_first_token``
before its first token and ``time_per_token`` for each completion token (the ``usage`` count): a
JSON answer is sent after the whole generation time; a stream sends its headers at once, its
first event after ``time_to_first_token`` and spreads the tokens' time over its content events.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, TypedDict

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "NetworkDelay",
    "Pacing",
    "StreamPacing",
    "generation_time",
    "stream_event_interval",
    "stream_pacing",
    "wait_for_generation",
]


class StreamPacing(TypedDict):
    """Keyword arguments of ``EventStreamResponse``: the pause between events, the first delay."""

    interval: float
    first_delay: float


class Pacing(Protocol):
    """The latency settings of the emulator's configuration."""

    @property
    def time_to_first_token(self) -> float: ...
    @property
    def time_per_token(self) -> float: ...
    @property
    def stream_interval(self) -> float: ...


class NetworkDelay:
    """Pure-ASGI middleware: every HTTP exchange takes ``rtt`` seconds longer."""

    def __init__(self, app: ASGIApp, *, rtt: float) -> None:
        self.app = app
        self.rtt = rtt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rtt > 0:
            await asyncio.sleep(self.rtt)
        await self.app(scope, receive, send)


def generation_time(*, time_to_first_token: float, time_per_token: float, tokens: int) -> float:
    """Seconds a non-streamed completion of ``tokens`` completion tokens takes to generate."""
    return time_to_first_token + time_per_token * max(0, tokens)


def stream_event_interval(
    *, stream_interval: float, time_per_token: float, tokens: int, events: int
) -> float:
    """The pause between a stream's events: the configured ``stream_interval`` plus the
    completion tokens' generation time spread evenly over the ``events`` events."""
    return stream_interval + time_per_token * max(0, tokens) / max(1, events)


def stream_pacing(pacing: Pacing, *, tokens: int, events: int) -> StreamPacing:
    """``interval`` and ``first_delay`` for an ``EventStreamResponse`` of ``events`` events
    carrying ``tokens`` completion tokens (the same pacing for both protocols)."""
    return {
        "interval": stream_event_interval(
            stream_interval=pacing.stream_interval,
            time_per_token=pacing.time_per_token,
            tokens=tokens,
            events=events,
        ),
        "first_delay": pacing.time_to_first_token,
    }


async def wait_for_generation(pacing: Pacing, *, tokens: int) -> None:
    """Sleep (on the loop) for a non-streamed completion's generation time."""
    delay = generation_time(
        time_to_first_token=pacing.time_to_first_token,
        time_per_token=pacing.time_per_token,
        tokens=tokens,
    )
    if delay > 0:
        await asyncio.sleep(delay)
