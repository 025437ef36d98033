"""Raw ASGI responses that control every byte sent, including deliberate resets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "EMULATOR_HEADER",
    "EventStreamResponse",
    "InjectedReset",
    "ResetResponse",
    "install_reset_log_filter",
]

EMULATOR_HEADER = (b"x-redpill-emulator", b"1")


class InjectedReset(Exception):
    """Raised inside a response to make the server drop the connection (a fault)."""


class _DropInjectedResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not _contains_reset(exc)


def _contains_reset(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, InjectedReset):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains_reset(e) for e in exc.exceptions)
    return _contains_reset(exc.__cause__ or exc.__context__)


def install_reset_log_filter() -> None:
    """Keep uvicorn from logging a traceback for every injected reset."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropInjectedResets) for f in logger.filters):
        logger.addFilter(_DropInjectedResets())


class EventStreamResponse(Response):
    """SSE: sends the headers, waits ``first_delay`` seconds, then sends ``events`` one by one
    (``interval`` seconds apart; 0 sends them back to back, each still its own chunk); optionally
    resets after ``reset_after`` events.

    ``on_complete`` runs after the last byte was handed to the server (the stream has ended);
    with ``complete_before_end`` it runs after the last event but before the end of the body, so
    whatever it stores exists once the client has read the whole stream.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: Sequence[bytes],
        *,
        on_complete: Callable[[], None] | None = None,
        reset_after: int | None = None,
        headers: dict[str, str] | None = None,
        interval: float = 0.0,
        complete_before_end: bool = False,
        first_delay: float = 0.0,
    ) -> None:
        super().__init__(content=None, status_code=200, headers=headers, media_type=self.media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._events = events
        self._on_complete = on_complete
        self._reset_after = reset_after
        self._interval = interval
        self._complete_before_end = complete_before_end
        self._first_delay = first_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self._events) - 1
        if self._first_delay > 0:
            await asyncio.sleep(self._first_delay)
        for i, event in enumerate(self._events):
            if self._reset_after is not None and i >= self._reset_after:
                raise InjectedReset("reset_mid_stream")
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if self._interval > 0 and i < last:  # no pause after the last event ([DONE])
                await asyncio.sleep(self._interval)
        if self._on_complete is not None and self._complete_before_end:
            self._on_complete()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if self._on_complete is not None and not self._complete_before_end:
            self._on_complete()


class ResetResponse(Response):
    """Announces a body, sends part of it, then drops the connection."""

    def __init__(self, body: bytes) -> None:
        super().__init__(content=body, status_code=200, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 3],
                "more_body": True,
            }
        )
        raise InjectedReset("attestation_reset")
