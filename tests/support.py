"""Test helpers shared by the suites (import as ``from tests.support import FakeTime``)."""

from __future__ import annotations

import asyncio


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps.

    Handed to ``RedpillVerifier(sleep=..., asleep=..., monotonic=...)``: retries and Retry-After
    waits advance it instead of really waiting, so retry budgets end at once and ``sleeps`` records
    every wait that was asked for.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)
