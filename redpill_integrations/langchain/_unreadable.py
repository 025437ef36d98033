"""Answers that arrived but could not be read: still verified, raised as ``ResponseUnreadable``.

The drivers of :mod:`._calls` call :func:`salvage` when the OpenAI SDK call (or its stream)
raises: it takes the call's exchange from the recorder and says whether it is one that must still
be verified (a complete 2xx body the SDK could not parse; a stream that broke off). The verdict
(one receipt) then goes into :class:`ResponseUnreadable`, raised ``from`` the original error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from redpill_integrations.errors import ResponseUnreadable
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify.encoding import MAX_JSON_DEPTH, too_deep
from redpill_integrations.wire import RedpillVerifier
from redpill_integrations.wire.capture import CapturedExchange

__all__ = ["aguard_json", "broken", "guard_json", "salvage"]


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


def guard_json(response: httpx.Response) -> None:
    """A response hook: ``response.json()`` refuses JSON nested beyond the core's depth guard.

    The OpenAI SDK parses a chat body with ``response.json()``; nested deeply enough it exhausts
    the recursion limit (``RecursionError``) or, when another package raised that limit (eth_account
    sets 100 000), overflows the C stack and kills the process. Refused here first, the SDK raises
    a ``ValueError`` instead, which the drivers turn into ``ResponseUnreadable`` (one receipt).
    """
    parse = response.json

    def guarded(**kwargs: Any) -> Any:
        if too_deep(response.content):
            raise ValueError(f"the response nests deeper than {MAX_JSON_DEPTH} levels")
        return parse(**kwargs)

    response.json = guarded  # type: ignore[method-assign]


async def aguard_json(response: httpx.Response) -> None:
    guard_json(response)
