"""The strict / annotate / off policy shared by ChatRedpill and RedpillCallbackHandler.

Decisions over :class:`VerificationResult`: how a verdict is attached to LangChain messages and
how a verdict served from a cache is re-derived (from its receipt, offline). What each mode does
with a verdict lives in the adapter core (:mod:`redpill_integrations._adapter`), shared with the
LlamaIndex adapter. No network, no LangChain runtime state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from redpill_integrations._adapter import VERDICT_KEY
from redpill_integrations._adapter.cached import rederive_cached
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import RedpillVerifier

__all__ = [
    "EVENT_NAME",
    "VERDICT_KEY",
    "attach_verdict",
    "failed_response",
    "mark_cached",
    "verdict_chunk",
    "verdict_from_message",
]

logger = logging.getLogger("redpill_integrations")

#: The LangChain custom event's name (the same key as the metadata's).
EVENT_NAME = VERDICT_KEY


def attach_verdict(result: ChatResult, verdict: VerificationResult) -> ChatResult:
    """Put ``verdict`` into every generation's ``response_metadata`` (a fresh dict per message)."""
    data = verdict.to_dict()
    for generation in result.generations:
        message = generation.message
        message.response_metadata = {**message.response_metadata, VERDICT_KEY: dict(data)}
    return result


def verdict_chunk(verdict: VerificationResult) -> ChatGenerationChunk:
    """The one trailing stream chunk with the verdict: empty content, ``chunk_position="last"``."""
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            chunk_position="last",
            response_metadata={VERDICT_KEY: verdict.to_dict()},
        )
    )


def verdict_from_message(message: BaseMessage) -> VerificationResult | None:
    """The verdict a message carries, or ``None``; a malformed verdict is reported, not trusted."""
    data = message.response_metadata.get(VERDICT_KEY)
    if data is None:
        return None
    return verdict_from_dict(data)


def verdict_from_dict(data: Any) -> VerificationResult:
    if isinstance(data, Mapping):
        try:
            return VerificationResult.from_dict(data)
        except (KeyError, ValueError, TypeError):
            pass
    return VerificationResult.unverifiable(
        Reason.MALFORMED_RESPONSE, detail="the redpill_verification metadata is not a verdict"
    )


def mark_cached(
    result: ChatResult, verifier: RedpillVerifier
) -> tuple[ChatResult, list[VerificationResult]]:
    """Copy a cache hit with each generation's verdict re-derived from its receipt.

    The verdict stored in the cache is never trusted (anyone who can write the cache can write
    it): :func:`~redpill_integrations._adapter.cached.rederive_cached` re-verifies the receipt it
    names, offline, under ``verifier``'s policy and trust, or reports ``unverifiable`` /
    ``CHECK_NOT_RUN``. The cached objects are never mutated (they are shared with the cache and
    with earlier callers).
    """
    generations: list[ChatGeneration] = []
    verdicts: list[VerificationResult] = []
    for index, generation in enumerate(result.generations):
        message = generation.message
        data = message.response_metadata.get(VERDICT_KEY)
        stored = verdict_from_dict(data) if data is not None else None
        verdict = rederive_cached(stored, _answer(message), index=index, verifier=verifier)
        verdicts.append(verdict)
        new_message = message.model_copy(
            update={
                "response_metadata": {**message.response_metadata, VERDICT_KEY: verdict.to_dict()}
            }
        )
        generations.append(
            ChatGeneration(message=new_message, generation_info=generation.generation_info)
        )
    return ChatResult(generations=generations, llm_output=result.llm_output), verdicts


def _answer(message: BaseMessage) -> tuple[str | None, list[tuple[str, Any]] | None]:
    """A cached message's text and tool calls (``None`` where it holds what cannot be compared:
    content blocks, or tool calls LangChain could not parse)."""
    text = message.content if isinstance(message.content, str) else None
    if not isinstance(message, AIMessage) or message.invalid_tool_calls:
        return text, None
    return text, [(call["name"], call["args"]) for call in message.tool_calls]


def failed_response(messages: Sequence[BaseMessage]) -> AIMessage | list[AIMessage] | None:
    """What a ``VerificationFailed`` carries: the message, or all of them when ``n > 1``."""
    ai = [m for m in messages if isinstance(m, AIMessage)]
    if not ai:
        return None
    return ai[0] if len(ai) == 1 else ai
