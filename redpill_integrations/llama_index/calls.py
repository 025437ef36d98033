"""One verified LLM call: its capture tag, its span, and what its mode does with the verdict.

The decisions live here once; ``llm.py``'s sync and async drivers only decide *when* to call them:

* :meth:`Call.conclude` attaches the verdict to the response that reaches the caller, dispatches
  one :class:`RedpillVerificationEvent` in the call's span, then ``strict`` raises
  :class:`VerificationFailed` (carrying that response, so nothing is lost) and ``annotate`` logs a
  warning, unless the verdict is ``verified``;
* :meth:`Call.abandon` is for a stream the consumer stopped (or that failed) after some content:
  the receipt is still written (``STREAM_INCOMPLETE``) and the event dispatched, never raised;
* :meth:`Call.discard` drops the capture of an attempt that delivered nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.instrumentation.span import active_span_id

from redpill_integrations.errors import ConfigurationError, VerificationFailed
from redpill_integrations.llama_index.events import dispatch_verification
from redpill_integrations.llama_index.models import is_tee_model
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

__all__ = ["VERIFICATION_KEY", "Call", "Mode", "check_mode", "trailing_response"]

logger = logging.getLogger("redpill_integrations")

Mode = Literal["strict", "annotate", "off"]
_MODES: tuple[Mode, ...] = ("strict", "annotate", "off")

#: where every response carries its verdict (``ChatResponse.additional_kwargs``)
VERIFICATION_KEY = "redpill_verification"


def check_mode(value: object) -> Mode:
    for mode in _MODES:
        if value == mode:
            return mode
    raise ConfigurationError(f"verification must be one of {', '.join(_MODES)}; got {value!r}")


@dataclasses.dataclass(slots=True)
class Call:
    verifier: RedpillVerifier
    mode: Mode
    model: str
    tag: str
    span_id: str | None  # the LLM call's span, captured when the call starts (streams end later)
    kwargs: dict[str, Any]  # the caller's kwargs plus the capture header

    @classmethod
    def start(
        cls, verifier: RedpillVerifier, mode: Mode, model: str, kwargs: dict[str, Any]
    ) -> Call:
        tag = verifier.recorder.new_tag()
        headers = {**(kwargs.get("extra_headers") or {}), CAPTURE_HEADER: tag}
        return cls(
            verifier=verifier,
            mode=mode,
            model=model,
            tag=tag,
            span_id=active_span_id.get(),
            kwargs={**kwargs, "extra_headers": headers},
        )

    def verify(self) -> VerificationResult:
        exchange = self.verifier.recorder.take(self.tag)
        if not is_tee_model(self.model):
            return self._not_tee(exchange)
        return self.verifier.verify(exchange)

    async def averify(self) -> VerificationResult:
        exchange = self.verifier.recorder.take(self.tag)
        if not is_tee_model(self.model):
            return self._not_tee(exchange)
        return await self.verifier.averify(exchange)

    def _not_tee(self, exchange: Any) -> VerificationResult:
        # annotate mode only (strict refuses before the call): nothing was signed, so there is
        # nothing to fetch; the verdict says so without a 30 s signature hunt.
        chat_id = getattr(exchange, "chat_id", None)
        return VerificationResult.unverifiable(
            Reason.MODEL_NOT_TEE,
            model=self.model,
            chat_id=chat_id,
            detail=f"{self.model} does not run in a TEE; its responses are not signed",
        )

    def discard(self) -> None:
        self.verifier.recorder.take(self.tag)

    def conclude(self, response: ChatResponse, result: VerificationResult) -> ChatResponse:
        response.additional_kwargs[VERIFICATION_KEY] = result.to_dict()
        dispatch_verification(result, mode=self.mode, span_id=self.span_id)
        if not result.verified:
            if self.mode == "strict":
                raise VerificationFailed(result, response=response)
            _warn(result, "")
        return response

    def abandon(self, result: VerificationResult) -> None:
        dispatch_verification(result, mode=self.mode, span_id=self.span_id, delivered=False)
        if not result.verified:
            _warn(result, " (stream stopped before its end)")


def _warn(result: VerificationResult, context: str) -> None:
    logger.warning(
        "Redpill response %s%s: %s, %s",
        result.chat_id or "(no chat id)",
        context,
        result.status.value,
        ", ".join(r.value for r in result.reasons),
    )


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
