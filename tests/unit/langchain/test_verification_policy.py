"""The shared strict/annotate/off decisions, verdict placement, cache marking and the handler."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult

from redpill_integrations._adapter import enforce
from redpill_integrations.errors import VerificationFailed
from redpill_integrations.langchain import VERDICT_KEY, RedpillCallbackHandler
from redpill_integrations.langchain._verification import (
    attach_verdict,
    mark_cached,
    verdict_chunk,
    verdict_from_message,
)
from redpill_integrations.results import CheckOutcome, Reason, Status, VerificationResult
from redpill_integrations.wire import RedpillVerifier

VERIFIED = VerificationResult.build(
    checks={"signature": CheckOutcome.PASS},
    reasons=[],
    required=("signature",),
    chat_id="chatcmpl-1",
    receipt_id="r-1",
)
FAILED = VerificationResult.build(
    checks={"response_hash": CheckOutcome.FAIL},
    reasons=[Reason.RESPONSE_HASH_MISMATCH],
    chat_id="chatcmpl-2",
    receipt_id="r-2",
)


def result(*contents: str) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=AIMessage(c)) for c in contents])


def test_attach_gives_each_generation_its_own_dict() -> None:
    out = attach_verdict(result("a", "b"), VERIFIED)
    first, second = (g.message.response_metadata[VERDICT_KEY] for g in out.generations)
    assert first == second == VERIFIED.to_dict() and first is not second


def test_stream_merge_carries_the_verdict_exactly_once() -> None:
    chunks = [AIMessageChunk(content=t) for t in ("Hel", "lo")]
    last = verdict_chunk(FAILED).message
    assert isinstance(last, AIMessageChunk)
    assert (last.content, last.chunk_position) == ("", "last")
    merged = chunks[0] + chunks[1] + last
    assert merged.content == "Hello" and merged.chunk_position == "last"
    assert merged.response_metadata[VERDICT_KEY] == FAILED.to_dict()
    assert sum(VERDICT_KEY in c.response_metadata for c in [*chunks, last]) == 1


#: a verifier without a receipt store: no cached verdict can be re-derived
NO_STORE = RedpillVerifier(base_url="https://redpill.invalid/v1")


def test_mark_cached_copies_and_never_mutates_the_cache_entry() -> None:
    cached = attach_verdict(result("a"), VERIFIED)
    original_message = cached.generations[0].message
    marked, verdicts = mark_cached(cached, NO_STORE)
    assert verdicts[0].cached is True and verdicts[0].status is Status.UNVERIFIABLE
    assert (
        verdicts[0].detail
        == "cached verdict not re-verified: no receipt store to re-verify it from"
    )
    assert marked.generations[0].message.response_metadata[VERDICT_KEY]["cached"] is True
    assert original_message.response_metadata[VERDICT_KEY]["cached"] is False
    assert cached.generations[0].message is original_message


def test_mark_cached_without_a_verdict_is_never_verified() -> None:
    marked, verdicts = mark_cached(result("from an off-mode model"), NO_STORE)
    assert verdicts[0].status is Status.UNVERIFIABLE
    assert verdicts[0].reasons == (Reason.CHECK_NOT_RUN,) and verdicts[0].cached
    assert marked.generations[0].message.response_metadata[VERDICT_KEY]["cached"] is True


@pytest.mark.parametrize("bad", ["verified", {"status": "bogus"}, {"reasons": []}])
def test_malformed_verdict_metadata_is_not_trusted(bad: object) -> None:
    verdict = verdict_from_message(AIMessage("x", response_metadata={VERDICT_KEY: bad}))
    assert verdict is not None and verdict.reasons == (Reason.MALFORMED_RESPONSE,)


def test_enforce_modes(caplog: pytest.LogCaptureFixture) -> None:
    message = AIMessage("content")
    with pytest.raises(VerificationFailed) as err:
        enforce("strict", FAILED, message)
    assert err.value.response is message and err.value.result is FAILED
    assert err.value.reason is Reason.RESPONSE_HASH_MISMATCH
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        enforce("annotate", FAILED, message)
    assert "RESPONSE_HASH_MISMATCH" in caplog.text and "chatcmpl-2" in caplog.text
    enforce("strict", VERIFIED, message)
    enforce("off", FAILED, message)


def llm_result(verdict: VerificationResult | None, **metadata: object) -> LLMResult:
    meta = dict(metadata)
    if verdict is not None:
        meta[VERDICT_KEY] = verdict.to_dict()
    return LLMResult(generations=[[ChatGeneration(message=AIMessage("x", response_metadata=meta))]])


def test_handler_collects_one_record_per_run() -> None:
    handler = RedpillCallbackHandler()
    assert handler.all_verified is False  # nothing checked is not a pass
    run = uuid.uuid4()
    asyncio.run(handler.on_llm_end(llm_result(VERIFIED), run_id=run))  # a coroutine (see docs)
    asyncio.run(handler.on_llm_end(llm_result(VERIFIED), run_id=run))
    assert len(handler.results) == 1 and handler.all_verified
    handler.on_llm_error(VerificationFailed(FAILED), run_id=uuid.uuid4())
    handler.on_llm_error(RuntimeError("boom"), run_id=uuid.uuid4())
    assert [r.status for r in handler.results] == [Status.VERIFIED, Status.FAILED]
    assert handler.all_verified is False
    assert handler.receipt_ids == ["r-1", "r-2"]
    summary = handler.summary()
    assert summary["calls"] == 2 and summary["failed"] == 1 and summary["verified"] == 1
    assert summary["reasons"] == {"RESPONSE_HASH_MISMATCH": 1} and summary["all_verified"] is False


def test_handler_stream_broken_after_content_is_stream_incomplete() -> None:
    handler = RedpillCallbackHandler()
    partial = LLMResult(generations=[[ChatGeneration(message=AIMessage("half an ans"))]])
    handler.on_llm_error(GeneratorExit(), run_id=uuid.uuid4(), response=partial)
    handler.on_llm_error(
        RuntimeError("nothing arrived"), run_id=uuid.uuid4(), response=LLMResult(generations=[])
    )
    (record,) = handler.results
    assert record.status is Status.UNVERIFIABLE and record.reasons == (Reason.STREAM_INCOMPLETE,)


def test_handler_call_without_verdict_or_verifier_is_check_not_run() -> None:
    handler = RedpillCallbackHandler()
    asyncio.run(handler.on_llm_end(llm_result(None, id="chatcmpl-x"), run_id=uuid.uuid4()))
    (record,) = handler.results
    assert record.reasons == (Reason.CHECK_NOT_RUN,) and record.chat_id == "chatcmpl-x"


def test_handler_records_custom_events() -> None:
    handler = RedpillCallbackHandler()
    handler.on_custom_event("redpill_verification", VERIFIED.to_dict(), run_id=uuid.uuid4())
    handler.on_custom_event("other", {"x": 1}, run_id=uuid.uuid4())
    assert handler.events == [VERIFIED.to_dict()]
    handler.reset()
    assert handler.events == [] and handler.results == []


def test_verdict_chunk_is_a_generation_chunk() -> None:
    assert isinstance(verdict_chunk(VERIFIED), ChatGenerationChunk)
