"""``VerifyingChatOpenAI``: the call drivers that put a verdict on every generation.

A ``BaseChatOpenAI`` whose clients go through the wire layer's capturing transports (built by the
subclass). Every decision about a verified call (the strict pre-check, the capture tag, the order
attach → event → enforce, unreadable answers, abandoned streams) is the adapter core's
(:mod:`redpill_integrations._adapter.core`); this module only translates LangChain's call styles
into it, and the verdict into ``response_metadata`` and the ``redpill_verification`` event. It
also tells fresh calls from cache hits (``_FRESHNESS``), whose verdicts are re-derived from their
receipts (never copied from the cache) and enforced.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.outputs.chat_generation import merge_chat_generation_chunks
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import Field

from redpill_integrations._adapter import VerificationMode, VerifiedCall, VerifiedCalls, enforce
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.langchain import _events
from redpill_integrations.langchain._verification import (
    attach_verdict,
    failed_response,
    mark_cached,
    verdict_chunk,
)
from redpill_integrations.results import VerificationResult
from redpill_integrations.wire import RedpillVerifier

__all__ = ["VerifyingChatOpenAI"]

logger = logging.getLogger("redpill_integrations")

R = TypeVar("R", CallbackManagerForLLMRun, AsyncCallbackManagerForLLMRun)


class _Freshness:
    """One ``_generate_with_cache`` call: did a real model call happen (unset means a cache hit),
    and its run manager, which LangChain does not hand to ``_stream``/``_astream`` there."""

    __slots__ = ("fresh", "run_manager")

    def __init__(self, run_manager: object) -> None:
        self.fresh = False
        self.run_manager = run_manager


_FRESHNESS: ContextVar[_Freshness | None] = ContextVar("redpill_freshness", default=None)


def _mark_fresh() -> None:
    probe = _FRESHNESS.get()
    if probe is not None:
        probe.fresh = True


def _outer_run_manager() -> object:
    probe = _FRESHNESS.get()
    return probe.run_manager if probe is not None else None


def _sync_manager(run_manager: CallbackManagerForLLMRun | None) -> CallbackManagerForLLMRun | None:
    outer = _outer_run_manager()
    if run_manager is None and isinstance(outer, CallbackManagerForLLMRun):
        return outer
    return run_manager


def _async_manager(
    run_manager: AsyncCallbackManagerForLLMRun | None,
) -> AsyncCallbackManagerForLLMRun | None:
    outer = _outer_run_manager()
    if run_manager is None and isinstance(outer, AsyncCallbackManagerForLLMRun):
        return outer
    return run_manager


def _merged_message(chunks: list[ChatGenerationChunk]) -> BaseMessage | None:
    merged = merge_chat_generation_chunks(chunks)
    if merged is None:
        return None
    message = merged.message
    message.response_metadata = {**(merged.generation_info or {}), **message.response_metadata}
    return message


class _Generations:
    """How a verdict reaches a ``ChatResult`` and the callbacks of its run."""

    def __init__(self, run_manager: Any) -> None:
        self.run_manager = run_manager

    def attach(self, response: ChatResult, result: VerificationResult) -> ChatResult:
        return attach_verdict(response, result)

    def emit(self, result: VerificationResult, *, delivered: bool) -> None:
        _events.emit(self.run_manager, result)

    async def aemit(self, result: VerificationResult, *, delivered: bool) -> None:
        await _events.aemit(self.run_manager, result)

    def carried(self, response: ChatResult) -> Any:
        return failed_response([g.message for g in response.generations])


class _Chunks:
    """How a verdict ends a stream of ``ChatGenerationChunk``: one trailing chunk carries it."""

    def __init__(self, run_manager: Any) -> None:
        self.run_manager = run_manager
        self.chunks: list[ChatGenerationChunk] = []

    def seen(self, chunk: ChatGenerationChunk) -> None:
        self.chunks.append(chunk)

    def final(self, result: VerificationResult) -> ChatGenerationChunk:
        return verdict_chunk(result)

    def emit(self, result: VerificationResult, *, delivered: bool) -> None:
        _events.emit(_sync_manager(self.run_manager), result)

    async def aemit(self, result: VerificationResult, *, delivered: bool) -> None:
        await _events.aemit(_async_manager(self.run_manager), result)

    def carried(self, final: ChatGenerationChunk) -> Any:
        return _merged_message([*self.chunks, final])

    def delivered(self) -> Any:
        return _merged_message(self.chunks)

    def yielding(self, final: ChatGenerationChunk) -> None:
        if self.run_manager:
            self.run_manager.on_llm_new_token("", chunk=final)

    async def ayielding(self, final: ChatGenerationChunk) -> None:
        if self.run_manager:
            await self.run_manager.on_llm_new_token("", chunk=final)

    def releasing(self, chunk: ChatGenerationChunk) -> None:
        # a held stream: langchain-openai was given no run manager (it would have reported the
        # token on arrival), so the token is reported now, as it reaches the consumer
        if self.run_manager:
            self.run_manager.on_llm_new_token(chunk.text, chunk=chunk)

    async def areleasing(self, chunk: ChatGenerationChunk) -> None:
        if self.run_manager:
            await self.run_manager.on_llm_new_token(chunk.text, chunk=chunk)


class VerifyingChatOpenAI(BaseChatOpenAI):
    """Verification drivers over langchain-openai's own ``_generate``/``_stream`` (and async)."""

    verification: VerificationMode = "strict"
    """``"strict"`` raises ``VerificationFailed``; ``"annotate"`` warns; ``"off"`` is plain."""
    redpill_verifier: RedpillVerifier | None = Field(default=None, alias="verifier", exclude=True)
    """The verifier in use (``None`` with ``verification="off"``)."""
    hold_stream: bool = False
    """Streams: hold every chunk until the verdict (strict: released only once ``verified``)."""

    # -- the seam into the adapter core -----------------------------------------------------------

    def _begin(self, kwargs: dict[str, Any]) -> tuple[VerifiedCalls, VerifiedCall]:
        """Pre-check and tag one call (the model's own ``extra_headers``/``extra_body`` kept)."""
        verifier = self.redpill_verifier
        if verifier is None:  # pragma: no cover - built in validate_environment
            raise ConfigurationError("ChatRedpill has no verifier")
        calls = VerifiedCalls(verifier=verifier, mode=self.verification, hold=self.hold_stream)
        call = calls.start(
            str(kwargs.get("model") or self.model_name),
            kwargs,
            extra_headers=self.model_kwargs.get("extra_headers"),
            extra_body=self.extra_body or self.model_kwargs.get("extra_body"),
        )
        _mark_fresh()
        return calls, call

    async def _abegin(self, kwargs: dict[str, Any]) -> tuple[VerifiedCalls, VerifiedCall]:
        """:meth:`_begin` for async calls (the pre-check never blocks the event loop)."""
        verifier = self.redpill_verifier
        if verifier is None:  # pragma: no cover - built in validate_environment
            raise ConfigurationError("ChatRedpill has no verifier")
        calls = VerifiedCalls(verifier=verifier, mode=self.verification, hold=self.hold_stream)
        call = await calls.astart(
            str(kwargs.get("model") or self.model_name),
            kwargs,
            extra_headers=self.model_kwargs.get("extra_headers"),
            extra_body=self.extra_body or self.model_kwargs.get("extra_body"),
        )
        _mark_fresh()
        return calls, call

    # -- sync drivers -----------------------------------------------------------------------------

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        probe = _Freshness(run_manager)
        token = _FRESHNESS.set(probe)
        try:
            result = super()._generate_with_cache(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        finally:
            _FRESHNESS.reset(token)
        if probe.fresh or self.verification == "off":
            return result
        result, verdicts = self._cached(result)
        for verdict in verdicts[:1]:
            _events.emit(run_manager, verdict)
        return self._enforce_cached(result, verdicts)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.verification == "off":
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        calls, call = self._begin(kwargs)
        return calls.call(
            call,
            lambda kw: super(VerifyingChatOpenAI, self)._generate(
                messages, stop=stop, run_manager=run_manager, **kw
            ),
            _Generations(run_manager),
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.verification == "off":
            yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            return
        calls, call = self._begin(kwargs)
        inner = cast(
            "Generator[ChatGenerationChunk, None, None]",
            super()._stream(
                messages, stop=stop, run_manager=self._inner(run_manager), **call.kwargs
            ),
        )
        yield from calls.stream(call, inner, _Chunks(run_manager))

    # -- async drivers ----------------------------------------------------------------------------

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        probe = _Freshness(run_manager)
        token = _FRESHNESS.set(probe)
        try:
            result = await super()._agenerate_with_cache(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        finally:
            _FRESHNESS.reset(token)
        if probe.fresh or self.verification == "off":
            return result
        result, verdicts = self._cached(result)
        for verdict in verdicts[:1]:
            await _events.aemit(run_manager, verdict)
        return self._enforce_cached(result, verdicts)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.verification == "off":
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        calls, call = await self._abegin(kwargs)
        return await calls.acall(
            call,
            lambda kw: super(VerifyingChatOpenAI, self)._agenerate(
                messages, stop=stop, run_manager=run_manager, **kw
            ),
            _Generations(run_manager),
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.verification == "off":
            async for chunk in super()._astream(
                messages, stop=stop, run_manager=run_manager, **kwargs
            ):
                yield chunk
            return
        calls, call = await self._abegin(kwargs)
        inner = cast(
            "AsyncGenerator[ChatGenerationChunk, None]",
            super()._astream(
                messages, stop=stop, run_manager=self._inner(run_manager), **call.kwargs
            ),
        )
        verified = cast(
            "AsyncGenerator[ChatGenerationChunk, None]",
            calls.astream(call, inner, _Chunks(run_manager)),
        )
        try:
            async for chunk in verified:
                yield chunk
        finally:  # a consumer that stops early closes us: the core must see it now
            await verified.aclose()

    # -- shared ---------------------------------------------------------------------------------

    def _inner(self, run_manager: R | None) -> R | None:
        """The run manager langchain-openai's stream gets: none when held (see ``releasing``)."""
        return None if self.hold_stream else run_manager

    def _cached(self, result: ChatResult) -> tuple[ChatResult, list[VerificationResult]]:
        verifier = self.redpill_verifier
        if verifier is None:  # pragma: no cover - built in validate_environment
            raise ConfigurationError("ChatRedpill has no verifier")
        return mark_cached(result, verifier)

    def _enforce_cached(self, result: ChatResult, verdicts: list[VerificationResult]) -> ChatResult:
        for verdict in verdicts[:1]:
            enforce(
                self.verification, verdict, failed_response([g.message for g in result.generations])
            )
        return result
