"""``with_structured_output`` in every method, tool calls and an agent loop, nothing scripted:
the emulator's model answers the schema itself; each answer arrives verified, with one receipt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from redpill_integrations import ReceiptStore
from redpill_integrations.emulator import Emulator
from redpill_integrations.langchain import VERDICT_KEY, ChatRedpill

Chat = Callable[..., ChatRedpill]
METHODS = ["function_calling", "json_schema", "json_mode"]


class Track(BaseModel):
    """A track on an album."""

    title: str
    seconds: int = Field(ge=1)


class Note(BaseModel):
    """A note."""

    title: str
    body: str


class Album(BaseModel):
    """An album with its tracks."""

    title: str
    year: int
    tracks: list[Track]
    format: Literal["vinyl", "cd", "stream"]
    label: str | None = None


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return f"It's sunny in {location}."


def _verified(message: Any) -> str:
    assert isinstance(message, AIMessage)
    v = message.response_metadata[VERDICT_KEY]
    assert v["status"] == "verified"
    return str(v["chat_id"])


@pytest.mark.parametrize("method", METHODS)
def test_structured_output_every_method(
    make_chat: Chat, emu: Emulator, store: ReceiptStore, method: str
) -> None:
    prompt = "The album 'Kind of Blue' from 1959 on vinyl."
    if method == "json_mode":  # JSON mode has no schema: the prompt names the keys
        prompt = "Return JSON with 'title' and 'body' keys for a note."
        schema: type[BaseModel] = Note
    else:
        schema = Album
    chat = make_chat().with_structured_output(schema, method=method, include_raw=True)
    out = chat.invoke(prompt)
    assert out["parsing_error"] is None
    parsed = out["parsed"]
    if method == "json_mode":  # the keys the prompt quotes, string values
        assert parsed == Note(title="emulated title", body="emulated body")
    else:
        assert isinstance(parsed, Album)
        assert (parsed.title, parsed.year, parsed.format, parsed.label) == (
            "Kind of Blue",
            1959,
            "vinyl",
            None,
        )
        assert len(parsed.tracks) == 1
    chat_id = _verified(out["raw"])
    assert [r.chat_id for r in store.list()] == [chat_id]


# the openai SDK's parsed stream chunks warn when langchain-openai dumps them (upstream noise)
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_structured_output_streams_and_async(
    make_chat: Chat, emu: Emulator, method: str
) -> None:
    chat = make_chat().with_structured_output(Track, method=method)
    prompt = "A track called 'So What', 562 seconds."
    assert await chat.ainvoke(prompt) == Track(title="So What", seconds=562)
    parts = [p async for p in chat.astream(prompt)]
    assert parts[-1] == Track(title="So What", seconds=562)
    assert list(chat.stream(prompt))[-1] == Track(title="So What", seconds=562)


def test_agent_loop_without_a_script(make_chat: Chat, emu: Emulator, store: ReceiptStore) -> None:
    llm = make_chat().bind_tools([get_weather])
    question = HumanMessage("What is the weather in San Francisco, CA?")
    call = llm.invoke([question])
    assert isinstance(call, AIMessage)
    assert call.tool_calls[0]["args"] == {"location": "San Francisco, CA"}
    result = get_weather.invoke(call.tool_calls[0])
    answer = llm.invoke([question, call, result])
    assert answer.content == (
        "According to the tools, get_weather returned: It's sunny in San Francisco, CA."
    )
    assert {_verified(call), _verified(answer)} == {r.chat_id for r in store.list()}


def test_streamed_tool_call_is_fragmented_and_verified(make_chat: Chat, emu: Emulator) -> None:
    llm = make_chat().bind_tools([get_weather], tool_choice="get_weather")
    chunks = list(llm.stream("Weather in San Francisco, CA?"))
    fragments = [c.tool_call_chunks[0]["args"] for c in chunks if c.tool_call_chunks]
    assert len(fragments) > 3 and "".join(fragments) == '{"location":"San Francisco, CA"}'
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.tool_calls[0]["args"] == {"location": "San Francisco, CA"}
    _verified(full)
