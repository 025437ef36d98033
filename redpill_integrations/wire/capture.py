"""Exact-byte capture of chat-completion exchanges, as httpx transports handed to the OpenAI SDK.

Correlation: a caller that wants *its* exchange adds the header ``CAPTURE_HEADER: <tag>`` to the
request (``extra_headers=`` in the OpenAI SDK; a tag from :meth:`ExchangeRecorder.new_tag`); the
transport strips that header before sending and files the exchange under the tag. Exchanges are also
findable by response id (``ExchangeRecorder.by_chat_id``) for callers that cannot add headers
(RedpillCallbackHandler with a plain ChatOpenAI).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import httpx

from redpill_integrations.results import Reason

CAPTURE_HEADER = "x-redpill-capture-tag"


@dataclasses.dataclass(frozen=True, slots=True)
class CapturedExchange:
    """One chat-completion attempt, bytes exactly as sent and received."""

    tag: str | None
    url: str
    request_body: bytes
    response_body: bytes  # after content decoding; the whole SSE stream when streamed
    status_code: int
    streamed: bool
    complete: bool  # False: stream ended before [DONE], consumer stopped early, body over the cap
    chat_id: str | None
    model: str | None  # from the request body
    started_at: datetime
    finished_at: datetime | None
    problem: Reason | None = None  # STREAM_INCOMPLETE, RESPONSE_TOO_LARGE, MALFORMED_RESPONSE, ...


class ExchangeRecorder:
    """Bounded, thread- and task-safe store of captured exchanges."""

    def new_tag(self) -> str:
        raise NotImplementedError

    def take(self, tag: str) -> CapturedExchange | None:
        """Remove and return the exchange of the last attempt filed under ``tag``."""
        raise NotImplementedError

    def by_chat_id(self, chat_id: str) -> CapturedExchange | None:
        raise NotImplementedError


class CapturingTransport(httpx.BaseTransport):
    """Wraps an inner transport (or a whole user ``httpx.Client``) and records chat exchanges."""


class AsyncCapturingTransport(httpx.AsyncBaseTransport):
    """Async twin driver of the same capture logic."""
