"""One verified LLM call: its capture tag, its span, and what its mode does with the verdict.

The decisions live here once; ``llm.py``'s sync and async drivers only decide *when* to call them:

* :meth:`Call.conclude` attaches the verdict to the response that reaches the caller, dispatches
  one :class:`RedpillVerificationEvent` in the call's span, then ``strict`` raises
  :class:`VerificationFailed` (carrying that response, so nothing is lost) and ``annotate`` logs a
  warning, unless the verdict is ``verified``;
* :meth:`Call.abandon` is for a stream the consumer stopped (or that failed) after some content:
  the receipt is still written (``STREAM_INCOMPLETE``) and the event dispatched, never raised;
* :meth:`Call.discard` drops the capture of an attempt that delivered nothing;
* :meth:`Call.salvage` / :meth:`Call.stopped` keep the exchange of a call whose answer arrived but
  could not be read (the OpenAI SDK could not parse a complete 2xx body; a stream broke off), and
  :meth:`Call.unreadable` turns its verdict into :class:`ResponseUnreadable` (raised ``from`` the
  original error): one receipt, the raw bytes and the verdict carried, only our error escapes.

:class:`LiveResponses` keeps the live httpx response of each tagged request (through the public
event hooks of the capturing clients), so that a stream the consumer abandons is closed, and its
capture finalized as incomplete, at once: the OpenAI SDK's stream objects sit in reference cycles
and would otherwise be closed by the garbage collector, long after the verdict was needed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from typing import Any

import httpx
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.instrumentation.span import active_span_id

from redpill_integrations.errors import ResponseUnreadable
from redpill_integrations.llama_index.events import dispatch_verification
from redpill_integrations.modes import VERDICT_KEY, VerificationMode, check_mode, enforce
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier
from redpill_integrations.wire.capture import CapturedExchange

__all__ = [
    "VERIFICATION_KEY",
    "Call",
    "LiveResponses",
    "Mode",
    "check_mode",
    "trailing_response",
]

logger = logging.getLogger("redpill_integrations")

Mode = VerificationMode

#: where every response carries its verdict (``ChatResponse.additional_kwargs``)
VERIFICATION_KEY = VERDICT_KEY


class LiveResponses:
    """The latest httpx response of each capture tag, until its call collects it (its response
    capturing clients come from the verifier with the deep-JSON guard of :mod:`wire.guard`)."""

    def __init__(self) -> None:
        self._tags: weakref.WeakKeyDictionary[httpx.Request, str] = weakref.WeakKeyDictionary()
        self._live: dict[str, httpx.Response] = {}
        self._lock = threading.Lock()

    def watch(self, client: httpx.Client) -> httpx.Client:
        hooks = client.event_hooks
        hooks["request"] = [*hooks.get("request", []), self._on_request]
        hooks["response"] = [*hooks.get("response", []), self._on_response]
        client.event_hooks = hooks
        return client

    def awatch(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        async def on_request(request: httpx.Request) -> None:
            self._on_request(request)

        async def on_response(response: httpx.Response) -> None:
            self._on_response(response)

        hooks = client.event_hooks
        hooks["request"] = [*hooks.get("request", []), on_request]
        hooks["response"] = [*hooks.get("response", []), on_response]
        client.event_hooks = hooks
        return client

    def _on_request(self, request: httpx.Request) -> None:
        tag = request.headers.get(CAPTURE_HEADER)  # hooks run before the transport strips it
        if tag is not None:
            with self._lock:
                self._tags[request] = tag

    def _on_response(self, response: httpx.Response) -> None:
        with self._lock:
            tag = self._tags.pop(response.request, None)
            if tag is not None:
                self._live[tag] = response

    def pop(self, tag: str) -> httpx.Response | None:
        with self._lock:
            return self._live.pop(tag, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)


@dataclasses.dataclass(slots=True)
class Call:
    verifier: RedpillVerifier
    live: LiveResponses
    mode: Mode
    tag: str
    span_id: str | None  # the LLM call's span, captured when the call starts (streams end later)
    kwargs: dict[str, Any]  # the caller's kwargs plus the capture header

    @classmethod
    def start(
        cls, verifier: RedpillVerifier, live: LiveResponses, mode: Mode, kwargs: dict[str, Any]
    ) -> Call:
        tag = verifier.recorder.new_tag()
        headers = {**(kwargs.get("extra_headers") or {}), CAPTURE_HEADER: tag}
        return cls(
            verifier=verifier,
            live=live,
            mode=mode,
            tag=tag,
            span_id=active_span_id.get(),
            kwargs={**kwargs, "extra_headers": headers},
        )

    def verify(self) -> VerificationResult:
        # The verifier answers MODEL_NOT_TEE itself (annotate mode; strict refuses before the call).
        self.live.pop(self.tag)
        return self.verifier.verify(self.verifier.recorder.take(self.tag))

    async def averify(self) -> VerificationResult:
        self.live.pop(self.tag)
        return await self.verifier.averify(self.verifier.recorder.take(self.tag))

    def close_response(self) -> None:
        """Close an abandoned stream's response now: its capture is filed as incomplete."""
        response = self.live.pop(self.tag)
        if response is not None:
            response.close()

    async def aclose_response(self) -> None:
        response = self.live.pop(self.tag)
        if response is not None:
            await response.aclose()

    def discard(self) -> None:
        self.take()

    def take(self) -> CapturedExchange | None:
        self.live.pop(self.tag)
        return self.verifier.recorder.take(self.tag)

    def salvage(self, exc: BaseException) -> tuple[CapturedExchange, Reason] | None:
        """After the SDK call raised ``exc``: its exchange to verify anyway and why it was
        unreadable, or ``None`` (``exc`` keeps its own way out; the capture is dropped)."""
        exchange = self.take()
        reason = ResponseUnreadable.reason_for(exchange, exc)
        return None if exchange is None or reason is None else (exchange, reason)

    def stopped(
        self, exc: BaseException, delivered: bool
    ) -> tuple[CapturedExchange | None, Reason | None] | None:
        """A stream that ended early with ``exc``: the exchange to verify (for its receipt) and, if
        it broke off, why; ``None`` when nothing was delivered nor broken (capture dropped)."""
        exchange = self.take()
        reason = ResponseUnreadable.reason_for(exchange, exc)
        return None if reason is None and not delivered else (exchange, reason)

    def unreadable(
        self,
        exchange: CapturedExchange,
        reason: Reason,
        result: VerificationResult,
        exc: BaseException,
        response: ChatResponse | None = None,
    ) -> ResponseUnreadable:
        dispatch_verification(result, mode=self.mode, span_id=self.span_id, delivered=False)
        return ResponseUnreadable.of(exchange, result, exc, reason=reason, response=response)

    def conclude(self, response: ChatResponse, result: VerificationResult) -> ChatResponse:
        response.additional_kwargs[VERIFICATION_KEY] = result.to_dict()
        dispatch_verification(result, mode=self.mode, span_id=self.span_id)
        enforce(self.mode, result, response)
        return response

    def abandon(self, result: VerificationResult) -> None:
        dispatch_verification(result, mode=self.mode, span_id=self.span_id, delivered=False)
        # never raised: the consumer already stopped; the receipt and the event record it
        enforce("annotate", result, None, context=" (stream stopped before its end)")


def trailing_response(last: ChatResponse | None) -> ChatResponse:
    """The extra response that ends a stream: the full message so far, an empty delta."""
    if last is None:
        message = ChatMessage(role=MessageRole.ASSISTANT, content="")
        extra: dict[str, Any] = {}
        raw = None
    else:
        message = ChatMessage(
            role=last.message.role,
            blocks=list(last.message.blocks),
            additional_kwargs=dict(last.message.additional_kwargs),
        )
        extra = {k: v for k, v in last.additional_kwargs.items() if k != "thinking_delta"}
        raw = last.raw
    return ChatResponse(message=message, delta="", raw=raw, additional_kwargs=extra)
