"""Answers that arrived but could not be read: still verified, raised as ``ResponseUnreadable``.

The drivers of :mod:`._calls` call :func:`salvage` when the OpenAI SDK call (or its stream)
raises: it takes the call's exchange from the recorder and says whether it is one that must still
be verified (a complete 2xx body the SDK could not parse; a stream that broke off). The verdict
(one receipt) then goes into :class:`ResponseUnreadable`, raised ``from`` the original error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redpill_integrations.errors import ResponseUnreadable
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import RedpillVerifier
from redpill_integrations.wire.capture import CapturedExchange

__all__ = ["broken", "salvage"]


def salvage(
    verifier: RedpillVerifier, tag: str, exc: BaseException
) -> tuple[CapturedExchange, Reason] | None:
    """After the SDK call raised ``exc``: its exchange to verify anyway, and why it was unreadable;
    ``None`` when ``exc`` keeps its own way out (the capture is then dropped)."""
    exchange = verifier.recorder.take(tag)
    reason = ResponseUnreadable.reason_for(exchange, exc)
    if exchange is None or reason is None:
        return None
    return exchange, reason


def broken(
    exchange: CapturedExchange | None,
    verdict: VerificationResult | None,
    exc: BaseException,
    delivered: Callable[[], Any],
) -> ResponseUnreadable | None:
    """The error for a stream that ended with ``exc`` after its exchange was verified, or None
    (the consumer stopped, a cancellation, an HTTP error: ``exc`` is raised as it is)."""
    reason = ResponseUnreadable.reason_for(exchange, exc)
    if exchange is None or reason is None:
        return None
    return ResponseUnreadable.of(exchange, verdict, exc, reason=reason, response=delivered())
