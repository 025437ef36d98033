"""``RedpillCallbackHandler``: the verdicts and receipts of a run (chain, agent, LangGraph graph).

Every chat-model call of the run ends in exactly one record, keyed by the model run's id:

* a ``ChatRedpill`` generation's ``response_metadata["redpill_verification"]`` (``on_llm_end``);
* a ``VerificationFailed`` raised in strict mode (``on_llm_error``): the verdict it carries;
* given ``verifier=``, a plain ``ChatOpenAI`` call made through ``verifier.http_client()`` /
  ``verifier.async_http_client()``, plain or streamed: ``on_chat_model_start`` binds a tag derived
  from the model run's id to the current context, the capturing transport files the exchange it
  sends in that context under the tag, and ``on_llm_end`` verifies exactly that exchange (never one
  found by the server-chosen response id, which a gateway can re-use). A capture problem (too
  large, undecodable) is the verdict; a missing exchange is ``unverifiable``;
* a stream that broke off or was stopped after content reached the caller (``on_llm_error``):
  ``unverifiable`` / ``STREAM_INCOMPLETE`` (its receipt is written by ChatRedpill all the same);
* anything else (no verdict, no chat id to look up): an ``unverifiable`` record, so that
  ``all_verified`` is never true for a call nobody checked. Errors before any content: no record.

The handler runs inline (``run_inline``): the tag must be bound in the context that sends the
request, and LangChain runs non-inline handlers of async runs in copied contexts. ``on_llm_end`` is
a coroutine so that an async run verifies without blocking its event loop (LangChain runs it to
completion for sync runs as well).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from redpill_integrations.errors import VerificationFailed
from redpill_integrations.langchain._verification import EVENT_NAME, verdict_from_message
from redpill_integrations.results import Reason, Status, VerificationResult
from redpill_integrations.wire import RedpillVerifier
from redpill_integrations.wire.capture import CapturedExchange

__all__ = ["RedpillCallbackHandler"]


class RedpillCallbackHandler(BaseCallbackHandler):
    """Collects one verdict per chat-model call of a run and summarises them.

    ```python
    handler = RedpillCallbackHandler()
    graph.invoke(inputs, config={"callbacks": [handler]})
    assert handler.all_verified, handler.summary()
    ```
    """

    raise_error = False
    run_inline = True  # on_chat_model_start must bind the tag in the context of the request

    def __init__(self, *, verifier: RedpillVerifier | None = None) -> None:
        super().__init__()
        self.verifier = verifier
        self._lock = threading.Lock()
        self._records: dict[UUID, VerificationResult] = {}
        self._events: list[dict[str, Any]] = []
        self._async_runs: set[UUID] = set()

    # -- what the run produced ------------------------------------------------------------------

    @property
    def results(self) -> list[VerificationResult]:
        """One verdict per model call, in the order the calls ended."""
        with self._lock:
            return list(self._records.values())

    @property
    def receipt_ids(self) -> list[str]:
        return [r.receipt_id for r in self.results if r.receipt_id]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The ``redpill_verification`` custom events seen (verdict dicts), in order."""
        with self._lock:
            return list(self._events)

    @property
    def all_verified(self) -> bool:
        """True only when there was at least one call and every call's verdict is ``verified``."""
        results = self.results
        return bool(results) and all(r.verified for r in results)

    def summary(self) -> dict[str, Any]:
        results = self.results
        statuses = Counter(r.status.value for r in results)
        reasons = Counter(reason.value for r in results for reason in r.reasons)
        return {
            "calls": len(results),
            "verified": statuses.get(Status.VERIFIED.value, 0),
            "failed": statuses.get(Status.FAILED.value, 0),
            "unverifiable": statuses.get(Status.UNVERIFIABLE.value, 0),
            "cached": sum(1 for r in results if r.cached),
            "all_verified": bool(results) and all(r.verified for r in results),
            "reasons": dict(reasons),
            "receipt_ids": [r.receipt_id for r in results if r.receipt_id],
        }

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._events.clear()

    # -- callbacks ------------------------------------------------------------------------------

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if name == EVENT_NAME and isinstance(data, dict):
            with self._lock:
                self._events.append(data)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        if self.verifier is None:
            return
        self.verifier.recorder.bind_tag(_tag(run_id))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        with self._lock:
            self._async_runs.add(run_id)

    async def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        exchange = self._take(run_id)
        with self._lock:
            is_async = run_id in self._async_runs
            self._async_runs.discard(run_id)
        verdict = self._known_verdict(response)
        if verdict is None:
            verdict = self._plain_verdict(response, exchange)
        if verdict is None:
            assert self.verifier is not None and exchange is not None
            if is_async:
                verdict = await self.verifier.averify(exchange)
            else:  # a sync run: LangChain drives this coroutine in a throwaway loop
                verdict = self.verifier.verify(exchange)
        self._record(run_id, verdict)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._take(run_id)
        with self._lock:
            self._async_runs.discard(run_id)
        if isinstance(error, VerificationFailed):
            self._record(run_id, error.result)
            return
        response = kwargs.get("response")
        if isinstance(response, LLMResult) and _delivered_content(response):
            # A stream that broke off (or was stopped) after content reached the caller: that
            # content was never verified.
            self._record(
                run_id,
                VerificationResult.unverifiable(
                    Reason.STREAM_INCOMPLETE,
                    detail=f"the call ended with {type(error).__name__} after delivering content",
                ),
            )

    # -- internals ------------------------------------------------------------------------------

    def _record(self, run_id: UUID, verdict: VerificationResult) -> None:
        with self._lock:
            self._records.setdefault(run_id, verdict)

    def _take(self, run_id: UUID) -> CapturedExchange | None:
        """The exchange filed for this run, removed (and its tag closed) in every case."""
        return self.verifier.recorder.take(_tag(run_id)) if self.verifier is not None else None

    def _known_verdict(self, response: LLMResult) -> VerificationResult | None:
        for message in _messages(response):
            verdict = verdict_from_message(message)
            if verdict is not None:
                return verdict
        return None

    def _plain_verdict(
        self, response: LLMResult, exchange: CapturedExchange | None
    ) -> VerificationResult | None:
        """The record of a call without a verdict; ``None``: verify ``exchange``."""
        messages = _messages(response)
        llm_output = response.llm_output or {}
        chat_id = next(
            (
                m.response_metadata["id"]
                for m in messages
                if isinstance(m.response_metadata.get("id"), str)
            ),
            llm_output.get("id") if isinstance(llm_output.get("id"), str) else None,
        )
        model = next(
            (
                m.response_metadata.get("model_name")
                for m in messages
                if m.response_metadata.get("model_name")
            ),
            llm_output.get("model_name"),
        )
        if self.verifier is None:
            return VerificationResult.unverifiable(
                Reason.CHECK_NOT_RUN,
                chat_id=chat_id,
                model=model,
                detail="the call carried no Redpill verdict and the handler has no verifier",
            )
        if exchange is None:
            return VerificationResult.unverifiable(
                Reason.CHECK_NOT_RUN,
                chat_id=chat_id,
                model=model,
                detail="no exchange was captured for this call: build the ChatOpenAI with "
                "http_client=verifier.http_client() and "
                "http_async_client=verifier.async_http_client()",
            )
        if chat_id is not None and exchange.problem is None and chat_id != exchange.chat_id:
            # Cannot happen for an exchange filed under this run's own tag; refuse, never guess.
            return VerificationResult.unverifiable(
                Reason.CHECK_NOT_RUN,
                chat_id=chat_id,
                model=model,
                detail="the exchange captured for this call is not the response it returned",
            )
        return None


def _tag(run_id: UUID) -> str:
    return f"lc-run-{run_id.hex}"


def _messages(response: LLMResult) -> list[BaseMessage]:
    return [
        g.message for batch in response.generations for g in batch if isinstance(g, ChatGeneration)
    ]


def _delivered_content(response: LLMResult) -> bool:
    for batch in response.generations:
        for generation in batch:
            message = getattr(generation, "message", None)
            if message is not None and (message.content or getattr(message, "tool_calls", None)):
                return True
    return False
