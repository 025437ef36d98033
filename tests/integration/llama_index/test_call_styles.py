"""Every LlamaIndex call style of ``Redpill`` against the emulator: each response carries a
``verified`` verdict for its own chat id, one receipt is stored, and instrumentation handlers see
exactly one ``RedpillVerificationEvent`` per call, in the call's span."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.llms.types import ChatMessage

from redpill_integrations.emulator import Emulator, Reply
from redpill_integrations.llama_index import VERIFICATION_KEY, Redpill, RedpillVerificationEvent
from redpill_integrations.receipts import ReceiptStore

from .conftest import MODEL, Collector, verdict

MSGS = [ChatMessage(role="user", content="Where does this run?")]
TEXT = "Inside a TDX confidential VM, on an H100 in CC mode."


def _chat_id(raw: Any) -> str:
    value = raw["id"] if isinstance(raw, dict) else raw.id
    assert isinstance(value, str) and value.startswith("chatcmpl-")
    return value


def _check(response: Any, collector: Collector, store: ReceiptStore, start_event: str) -> None:
    result = verdict(response)
    assert result["status"] == "verified" and result["reasons"] == []
    assert result["chat_id"] == _chat_id(response.raw) and result["model"] == MODEL
    assert set(result["checks"].values()) == {"pass"}
    assert (result["protocol"], result["aci"]) == ("legacy", None)  # the legacy emulator
    (event,) = collector.named("RedpillVerificationEvent")
    assert isinstance(event, RedpillVerificationEvent) and event.verification == result
    (start,) = collector.named(start_event)
    assert event.span_id is not None and event.span_id == start.span_id
    receipt = store.get(result["receipt_id"])
    assert receipt is not None and receipt.result.chat_id == result["chat_id"]


def test_chat(emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    response = llm.chat(MSGS)
    assert response.message.content == TEXT
    _check(response, collector, store, "LLMChatStartEvent")


async def test_achat(
    emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore
) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    response = await llm.achat(MSGS)
    assert response.message.content == TEXT
    _check(response, collector, store, "LLMChatStartEvent")


def test_complete(emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    response = llm.complete("Where does this run?")
    assert response.text == TEXT
    _check(response, collector, store, "LLMCompletionStartEvent")


async def test_acomplete(
    emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore
) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    response = await llm.acomplete("Where does this run?")
    assert response.text == TEXT
    _check(response, collector, store, "LLMCompletionStartEvent")


def _check_stream(
    chunks: list[Any], collector: Collector, store: ReceiptStore, start_event: str
) -> None:
    assert len(chunks) > 3
    carrying = [c for c in chunks if VERIFICATION_KEY in c.additional_kwargs]
    assert carrying == [chunks[-1]] and chunks[-1].delta == ""
    assert "".join(c.delta or "" for c in chunks) == TEXT
    _check(chunks[-1], collector, store, start_event)


def test_stream_chat(
    emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore
) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    chunks = list(llm.stream_chat(MSGS))
    assert chunks[-1].message.content == TEXT
    _check_stream(chunks, collector, store, "LLMChatStartEvent")
    (end,) = collector.named("LLMChatEndEvent")
    assert end.response is chunks[-1]


async def test_astream_chat(
    emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore
) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    chunks = [c async for c in await llm.astream_chat(MSGS)]
    assert chunks[-1].message.content == TEXT
    _check_stream(chunks, collector, store, "LLMChatStartEvent")


def test_stream_complete(
    emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore
) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    chunks = list(llm.stream_complete("Where does this run?"))
    assert chunks[-1].text == TEXT
    _check_stream(chunks, collector, store, "LLMCompletionStartEvent")


async def test_astream_complete(
    emu: Emulator, llm: Redpill, collector: Collector, store: ReceiptStore
) -> None:
    emu.script(replies=[Reply.text(TEXT)])
    chunks = [c async for c in await llm.astream_complete("Where does this run?")]
    assert chunks[-1].text == TEXT
    _check_stream(chunks, collector, store, "LLMCompletionStartEvent")


def test_async_calls_from_successive_event_loops(emu: Emulator, llm: Redpill) -> None:
    for _ in range(2):  # a fresh loop each time: the kept client must not be loop-bound
        response = asyncio.run(llm.achat(MSGS))
        assert verdict(response)["status"] == "verified"
