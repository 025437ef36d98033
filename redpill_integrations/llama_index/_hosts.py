"""How a verdict reaches LlamaIndex: ``additional_kwargs`` and a ``RedpillVerificationEvent``.

The adapter core (:mod:`redpill_integrations._adapter.core`) makes every decision; these hosts only
put its verdict where LlamaIndex users look for it:

* :class:`ResponseHost`: the verdict in ``ChatResponse.additional_kwargs[VERIFICATION_KEY]``, one
  event in the LLM call's span (captured when the call starts: streams end later);
* :class:`StreamHost`: the same on one trailing response that ends a stream (the full message so
  far, an empty delta).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.instrumentation.span import active_span_id

from redpill_integrations._adapter import VERDICT_KEY, VerificationMode
from redpill_integrations.llama_index.events import dispatch_verification
from redpill_integrations.results import VerificationResult

__all__ = ["VERIFICATION_KEY", "ResponseHost", "StreamHost", "trailing_response"]

#: where every response carries its verdict (``ChatResponse.additional_kwargs``)
VERIFICATION_KEY = VERDICT_KEY


class ResponseHost:
    def __init__(self, mode: VerificationMode) -> None:
        self.mode = mode
        self.span_id: str | None = active_span_id.get()

    def attach(self, response: ChatResponse, result: VerificationResult) -> ChatResponse:
        response.additional_kwargs[VERIFICATION_KEY] = result.to_dict()
        return response

    def emit(self, result: VerificationResult, *, delivered: bool) -> None:
        dispatch_verification(result, mode=self.mode, span_id=self.span_id, delivered=delivered)

    async def aemit(self, result: VerificationResult, *, delivered: bool) -> None:
        self.emit(result, delivered=delivered)

    def carried(self, response: ChatResponse) -> Any:
        return response


class StreamHost(ResponseHost):
    def __init__(self, mode: VerificationMode) -> None:
        super().__init__(mode)
        self.last: ChatResponse | None = None

    def seen(self, chunk: ChatResponse) -> None:
        self.last = chunk

    def final(self, result: VerificationResult) -> ChatResponse:
        return self.attach(trailing_response(self.last), result)

    def delivered(self) -> Any:
        return trailing_response(self.last) if self.last is not None else None

    def yielding(self, final: ChatResponse) -> None:
        return None

    async def ayielding(self, final: ChatResponse) -> None:
        return None

    def releasing(self, chunk: ChatResponse) -> None:
        return None  # llama-index's own wrapper reports each chunk as it is yielded

    async def areleasing(self, chunk: ChatResponse) -> None:
        return None


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
