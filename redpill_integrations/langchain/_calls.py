"""``VerifyingChatOpenAI``: the call drivers that put a verdict on every generation.

A ``BaseChatOpenAI`` whose clients go through the wire layer's capturing transports (built by the
subclass). Each call is tagged with ``CAPTURE_HEADER``; once the response (or the stream) ends, the
exchange filed under that tag is handed to the verifier, which decides (``MODEL_NOT_TEE``
included) and writes the one receipt. Sync and async drivers share every decision: they differ
only in how they wait for the verifier and dispatch the event.

A call whose answer arrived but could not be read still gets its receipt: a complete 2xx body
the OpenAI SDK fails to parse (:mod:`._unreadable`), or a stream that broke off,
is verified and raised as :class:`ResponseUnreadable` carrying the verdict and the raw bytes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextvars import ContextVar
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.outputs.chat_generation import merge_chat_generation_chunks
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import Field

from redpill_integrations.errors import ConfigurationError, ResponseUnreadable
from redpill_integrations.langchain import _events
from redpill_integrations.langchain._unreadable import broken, salvage
from redpill_integrations.langchain._verification import (
    VerificationMode,
    attach_verdict,
    enforce,
    failed_response,
    is_tee_model,
    mark_cached,
    model_not_tee,
    verdict_chunk,
)
from redpill_integrations.results import VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

__all__ = ["VerifyingChatOpenAI"]

logger = logging.getLogger("redpill_integrations")


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


class VerifyingChatOpenAI(BaseChatOpenAI):
    """Verification drivers over langchain-openai's own ``_generate``/``_stream`` (and async)."""

    verification: VerificationMode = "strict"
    """``"strict"`` raises ``VerificationFailed``; ``"annotate"`` warns; ``"off"`` is plain."""
    redpill_verifier: RedpillVerifier | None = Field(default=None, alias="verifier", exclude=True)
    """The verifier in use (``None`` with ``verification="off"``)."""

    # -- verification seams ---------------------------------------------------------------------

    def _begin(self, kwargs: dict[str, Any]) -> tuple[RedpillVerifier, str, dict[str, Any]]:
        """Tag one call for capture: (verifier, tag, kwargs with the capture header)."""
        verifier = self.redpill_verifier
        if verifier is None:  # pragma: no cover - built in validate_environment
            raise ConfigurationError("ChatRedpill has no verifier")
        model = str(kwargs.get("model") or self.model_name)
        if self.verification == "strict" and not is_tee_model(model):
            raise model_not_tee(model)
        _mark_fresh()
        tag = verifier.recorder.new_tag()
        user_headers = kwargs.get("extra_headers") or self.model_kwargs.get("extra_headers") or {}
        return verifier, tag, {**kwargs, "extra_headers": {**user_headers, CAPTURE_HEADER: tag}}

    # The verifier decides everything about the exchange (MODEL_NOT_TEE included) and writes the
    # one receipt; these only fetch the exchange filed under the call's tag.

    @staticmethod
    def _verify(verifier: RedpillVerifier, tag: str) -> VerificationResult:
        return verifier.verify(verifier.recorder.take(tag))

    @staticmethod
    async def _averify(verifier: RedpillVerifier, tag: str) -> VerificationResult:
        return await verifier.averify(verifier.recorder.take(tag))

    def _settle(self, result: ChatResult, verdict: VerificationResult) -> ChatResult:
        attach_verdict(result, verdict)
        enforce(
            self.verification, verdict, failed_response([g.message for g in result.generations])
        )
        return result

    @staticmethod
    def _abandoned(
        verifier: RedpillVerifier,
        tag: str,
        exc: BaseException,
        chunks: list[ChatGenerationChunk],
    ) -> BaseException | None:
        """A stream that ended early (consumer stopped, error): still verify it, for its receipt.
        Returns the error to raise instead of ``exc`` (a broken stream), or None."""
        exchange = verifier.recorder.take(tag)
        verdict: VerificationResult | None = None
        try:
            verdict = verifier.verify(exchange)
        except Exception:  # never mask the reason the stream ended
            logger.exception("Redpill: could not verify an abandoned stream")
        else:
            _log_abandoned(verdict)
        return broken(exchange, verdict, exc, lambda: _merged_message(chunks))

    @staticmethod
    async def _aabandoned(
        verifier: RedpillVerifier,
        tag: str,
        exc: BaseException,
        chunks: list[ChatGenerationChunk],
    ) -> BaseException | None:
        exchange = verifier.recorder.take(tag)
        verdict: VerificationResult | None = None
        try:
            verdict = await verifier.averify(exchange)
        except Exception:
            logger.exception("Redpill: could not verify an abandoned stream")
        else:
            _log_abandoned(verdict)
        return broken(exchange, verdict, exc, lambda: _merged_message(chunks))

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
        result, verdicts = mark_cached(result)
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
        verifier, tag, kwargs = self._begin(kwargs)
        try:
            result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        except BaseException as exc:
            salvaged = salvage(verifier, tag, exc)
            if salvaged is None:
                raise
            exchange, reason = salvaged
            verdict = verifier.verify(exchange)
            _events.emit(run_manager, verdict)
            raise ResponseUnreadable.of(exchange, verdict, exc, reason=reason) from exc
        verdict = self._verify(verifier, tag)
        _events.emit(run_manager, verdict)
        return self._settle(result, verdict)

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
        verifier, tag, kwargs = self._begin(kwargs)
        inner = cast(
            "Generator[ChatGenerationChunk, None, None]",
            super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs),
        )
        chunks: list[ChatGenerationChunk] = []
        try:
            for chunk in inner:
                chunks.append(chunk)
                yield chunk
        except BaseException as exc:  # stopped early (GeneratorExit) or failed: keep the receipt
            inner.close()
            error = self._abandoned(verifier, tag, exc, chunks)
            if error is None:
                raise
            raise error from exc
        verdict = self._verify(verifier, tag)
        final = verdict_chunk(verdict)
        _events.emit(_sync_manager(run_manager), verdict)
        enforce(self.verification, verdict, _merged_message([*chunks, final]))
        if run_manager:
            run_manager.on_llm_new_token("", chunk=final)
        yield final

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
        result, verdicts = mark_cached(result)
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
        verifier, tag, kwargs = self._begin(kwargs)
        try:
            result = await super()._agenerate(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        except BaseException as exc:
            salvaged = salvage(verifier, tag, exc)
            if salvaged is None:
                raise
            exchange, reason = salvaged
            verdict = await verifier.averify(exchange)
            await _events.aemit(run_manager, verdict)
            raise ResponseUnreadable.of(exchange, verdict, exc, reason=reason) from exc
        verdict = await self._averify(verifier, tag)
        await _events.aemit(run_manager, verdict)
        return self._settle(result, verdict)

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
        verifier, tag, kwargs = self._begin(kwargs)
        inner = cast(
            "AsyncGenerator[ChatGenerationChunk, None]",
            super()._astream(messages, stop=stop, run_manager=run_manager, **kwargs),
        )
        chunks: list[ChatGenerationChunk] = []
        try:
            async for chunk in inner:
                chunks.append(chunk)
                yield chunk
        except BaseException as exc:
            await inner.aclose()
            error = await self._aabandoned(verifier, tag, exc, chunks)
            if error is None:
                raise
            raise error from exc
        verdict = await self._averify(verifier, tag)
        final = verdict_chunk(verdict)
        await _events.aemit(_async_manager(run_manager), verdict)
        enforce(self.verification, verdict, _merged_message([*chunks, final]))
        if run_manager:
            await run_manager.on_llm_new_token("", chunk=final)
        yield final

    # -- shared ---------------------------------------------------------------------------------

    def _enforce_cached(self, result: ChatResult, verdicts: list[VerificationResult]) -> ChatResult:
        for verdict in verdicts[:1]:
            enforce(
                self.verification, verdict, failed_response([g.message for g in result.generations])
            )
        return result


def _log_abandoned(verdict: VerificationResult) -> None:
    logger.warning(
        "Redpill stream for chat %s ended early: %s %s (receipt %s)",
        verdict.chat_id,
        verdict.status.value,
        ", ".join(r.value for r in verdict.reasons),
        verdict.receipt_id,
    )
