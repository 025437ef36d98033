"""Every LangChain call style of ChatRedpill against the emulator carries one correct verdict."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.prompts import ChatPromptTemplate

from redpill_integrations import ReceiptStore, TrustAnchors
from redpill_integrations.emulator import Emulator, Reply
from redpill_integrations.langchain import VERDICT_KEY, ChatRedpill, RedpillCallbackHandler
from redpill_integrations.results import Reason, Status

from .conftest import MODEL

Chat = Callable[..., ChatRedpill]


def assert_verified(message: BaseMessage, store: ReceiptStore | None = None) -> dict[str, Any]:
    verdict = message.response_metadata[VERDICT_KEY]
    assert verdict["status"] == "verified", verdict
    assert verdict["reasons"] == [] and verdict["cached"] is False
    assert verdict["chat_id"].startswith("chatcmpl-") and verdict["model"] == MODEL
    assert set(verdict["checks"].values()) == {"pass"}
    # this suite runs the per-node protocol (the legacy emulator)
    assert (verdict["protocol"], verdict["aci"]) == ("legacy", None)
    if store is not None:
        receipt = store.get(verdict["receipt_id"])
        assert receipt is not None and receipt.result.chat_id == verdict["chat_id"]
    return dict(verdict)


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    return full


def test_invoke_and_batch(make_chat: Chat, store: ReceiptStore) -> None:
    chat = make_chat()
    first = assert_verified(chat.invoke("hello"), store)
    outs = chat.batch(["one", "two", "three"])
    ids = {assert_verified(m, store)["chat_id"] for m in outs}
    assert len(ids | {first["chat_id"]}) == 4 and len(store) == 4


async def test_ainvoke_and_abatch(make_chat: Chat, store: ReceiptStore) -> None:
    chat = make_chat()
    assert_verified(await chat.ainvoke("hello"), store)
    outs = await chat.abatch(["one", "two"])
    assert len({assert_verified(m, store)["chat_id"] for m in outs}) == 2


def check_stream(chunks: list[AIMessageChunk], emu: Emulator) -> None:
    carriers = [c for c in chunks if VERDICT_KEY in c.response_metadata]
    assert carriers == [chunks[-1]]
    last = chunks[-1]
    assert last.content == "" and last.chunk_position == "last"
    full = merge(chunks)
    assert full.content.startswith("Emulated reply from ") and full.chunk_position == "last"
    assert full.response_metadata[VERDICT_KEY] == last.response_metadata[VERDICT_KEY]
    assert_verified(full)
    assert full.usage_metadata is not None and full.usage_metadata["total_tokens"] > 0


def test_stream_has_one_trailing_verdict_chunk(make_chat: Chat, emu: Emulator) -> None:
    check_stream(list(make_chat().stream("hello")), emu)


async def test_astream_has_one_trailing_verdict_chunk(make_chat: Chat, emu: Emulator) -> None:
    check_stream([c async for c in make_chat().astream("hello")], emu)


@pytest.mark.parametrize("streaming", [False, True])
async def test_streaming_flag_invoke_is_verified_with_one_event(
    make_chat: Chat, streaming: bool
) -> None:
    chat = make_chat(streaming=streaming)
    handler = RedpillCallbackHandler()
    sync_msg = chat.invoke("hello", config={"callbacks": [handler]})
    async_msg = await chat.ainvoke("hello", config={"callbacks": [handler]})
    verdicts = [assert_verified(sync_msg), assert_verified(async_msg)]
    assert handler.events == verdicts and [r.to_dict() for r in handler.results] == verdicts


def test_stopping_a_stream_early_still_writes_its_receipt(
    make_chat: Chat, emu: Emulator, store: ReceiptStore
) -> None:
    emu.script(MODEL, [Reply.text("word " * 400)])
    handler = RedpillCallbackHandler()
    stream = make_chat().stream("long please", config={"callbacks": [handler]})
    next(stream)
    next(stream)
    stream.close()
    gc.collect()
    (receipt,) = store.list()
    assert receipt.result.status is Status.UNVERIFIABLE
    assert receipt.result.reasons == (Reason.STREAM_INCOMPLETE,)
    assert [r.reasons for r in handler.results] == [(Reason.STREAM_INCOMPLETE,)]


async def test_stopping_an_astream_early_still_writes_its_receipt(
    make_chat: Chat, emu: Emulator, store: ReceiptStore
) -> None:
    emu.script(MODEL, [Reply.text("word " * 400)])
    agen = make_chat().astream("long please")
    await agen.__anext__()
    await agen.aclose()  # the model's own generator is finalised by the event loop
    for _ in range(200):
        gc.collect()
        await asyncio.sleep(0.01)
        if len(store):
            break
    (receipt,) = store.list()
    assert receipt.result.reasons == (Reason.STREAM_INCOMPLETE,)


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_content_is_kept(make_chat: Chat, emu: Emulator, stream: bool) -> None:
    emu.script(MODEL, [Reply.text("42", reasoning="six times seven")])
    chat = make_chat()
    message: BaseMessage = merge(list(chat.stream("q"))) if stream else chat.invoke("q")
    assert message.additional_kwargs["reasoning_content"] == "six times seven"
    assert message.content == "42"
    assert_verified(message)


@pytest.mark.parametrize("use_async", [False, True])
async def test_cache_hits_are_marked_cached(make_chat: Chat, use_async: bool) -> None:
    chat = make_chat(cache=InMemoryCache())
    handler = RedpillCallbackHandler()
    config: Any = {"callbacks": [handler]}
    fresh = await chat.ainvoke("same", config) if use_async else chat.invoke("same", config)
    again = await chat.ainvoke("same", config) if use_async else chat.invoke("same", config)
    first, second = fresh.response_metadata[VERDICT_KEY], again.response_metadata[VERDICT_KEY]
    assert first["cached"] is False and second["cached"] is True
    # re-derived from the receipt (not copied from the cache): the same verdict, marked cached,
    # without the live call's fetch detail
    assert {**second, "cached": False, "detail": None} == {**first, "detail": None}
    assert fresh.response_metadata[VERDICT_KEY]["cached"] is False  # the first answer untouched
    assert [r.cached for r in handler.results] == [False, True]
    assert [e["cached"] for e in handler.events] == [False, True]


def test_an_off_model_cache_entry_never_serves_a_verifying_model(make_chat: Chat) -> None:
    set_llm_cache(InMemoryCache())
    try:
        plain = make_chat(verification="off").invoke("cached by off")
        checked = make_chat().invoke("cached by off")
    finally:
        set_llm_cache(None)
    assert VERDICT_KEY not in plain.response_metadata
    assert_verified(checked)  # a fresh, verified call: the mode is part of the cache key


def test_invoke_emits_one_custom_event_on_the_model_run(make_chat: Chat) -> None:
    handler = RedpillCallbackHandler()
    message = make_chat().invoke("hello", config={"callbacks": [handler]})
    assert handler.events == [message.response_metadata[VERDICT_KEY]]
    assert handler.all_verified and len(handler.results) == 1


async def test_astream_events_in_a_chain_show_the_custom_event(make_chat: Chat) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | make_chat()
    events = [e async for e in chain.astream_events({"q": "hi"}, version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom] == ["redpill_verification"]
    assert custom[0]["data"]["status"] == "verified"


def test_default_construction_with_trust_anchors(emu: Emulator, tmp_path: Any) -> None:
    store = ReceiptStore(tmp_path / "r.sqlite3")
    trust = TrustAnchors.from_dict(emu.trust_dict())
    chat = ChatRedpill(
        model=MODEL, base_url=emu.base_url, api_key=emu.api_key, trust=trust, receipt_store=store
    )
    assert_verified(chat.invoke("hello"), store)


def test_trust_file_from_env_is_honoured_with_a_warning(
    emu: Emulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = emu.write_trust_file(tmp_path / "trust.json")
    monkeypatch.setenv("REDPILL_TRUST_FILE", str(path))
    chat = ChatRedpill(model=MODEL, base_url=emu.base_url, api_key=emu.api_key)
    assert "NON-PRODUCTION" in caplog.text
    assert_verified(chat.invoke("hello"))
