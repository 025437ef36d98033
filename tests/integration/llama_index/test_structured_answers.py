"""Function calling, agents and structured output with nothing scripted: the emulator's model
answers tools and schemas itself (values from the prompt, typed defaults otherwise), and every
LLM response llama-index receives carries a ``verified`` verdict."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from redpill_integrations.emulator import Emulator
from redpill_integrations.llama_index import Redpill

from .conftest import Collector, verdict

# workflows' step discovery runs inspect.getmembers over the pydantic agent (upstream noise)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return f"It is sunny in {location}."


class Track(BaseModel):
    title: str
    seconds: int = Field(ge=1)


class Album(BaseModel):
    """An album, its year and its tracks."""

    title: str
    artist: str
    year: int
    tracks: list[Track]
    genre: str | None = None


def _verified(collector: Collector, end_event: str = "LLMChatEndEvent") -> list[Any]:
    responses = [e.response for e in collector.named(end_event)]
    events = collector.named("RedpillVerificationEvent")
    assert len(events) == len(responses) > 0
    for response, event in zip(responses, events, strict=True):
        assert verdict(response)["status"] == "verified"
        assert event.verification == verdict(response)
    return responses


def test_predict_and_call_takes_arguments_from_the_prompt(
    emu: Emulator, llm: Redpill, collector: Collector
) -> None:
    answer = llm.predict_and_call([FunctionTool.from_defaults(fn=multiply)], "What is 6 x 7?")
    assert answer.response == "42"
    assert answer.sources[0].raw_input == {"args": (), "kwargs": {"a": 6, "b": 7}}
    _verified(collector)


def test_the_named_tool_is_called(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    tools = [FunctionTool.from_defaults(fn=multiply), FunctionTool.from_defaults(fn=get_weather)]
    response = llm.chat_with_tools(tools, user_msg="Use get_weather for San Francisco, CA.")
    (call,) = llm.get_tool_calls_from_response(response)
    assert (call.tool_name, call.tool_kwargs) == ("get_weather", {"location": "San Francisco, CA"})
    _verified(collector)


async def test_function_agent_runs_the_tool_and_answers_with_its_result(
    emu: Emulator, llm: Redpill, collector: Collector
) -> None:
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)
    output = await agent.run(user_msg="What is 6 x 7?")
    assert str(output.response.content) == "According to the tools, multiply returned: 42"
    assert [t.tool_output.content for t in output.tool_calls] == ["42"]
    responses = _verified(collector)
    assert len(responses) == 2
    assert len({verdict(r)["chat_id"] for r in responses}) == 2


def test_stream_chat_with_tools_assembles_the_fragments(
    emu: Emulator, llm: Redpill, collector: Collector
) -> None:
    tools = [FunctionTool.from_defaults(fn=get_weather)]
    chunks = list(llm.stream_chat_with_tools(tools, user_msg="Weather in San Francisco, CA?"))
    # the arguments arrive in several deltas, as a real model streams them
    assert sum(1 for c in chunks if c.message.additional_kwargs.get("tool_calls")) > 3
    (call,) = llm.get_tool_calls_from_response(chunks[-1], error_on_no_tool_call=True)
    assert call.tool_kwargs == {"location": "San Francisco, CA"}
    (last,) = _verified(collector)
    assert last is chunks[-1]


def test_structured_predict_nested_model(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    album = llm.structured_predict(
        Album,
        PromptTemplate("Name an album by {artist} from {year}."),
        artist="'Miles Davis'",
        year=1959,
    )
    assert isinstance(album, Album)
    assert (album.title, album.year, album.genre) == ("Miles Davis", 1959, None)
    assert len(album.tracks) == 1 and album.tracks[0].seconds >= 1
    _verified(collector)


async def test_astructured_predict(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    track = await llm.astructured_predict(
        Track, PromptTemplate("A track called {title}, 300 seconds long."), title="'So What'"
    )
    assert track == Track(title="So What", seconds=300)
    _verified(collector)


def test_stream_structured_predict(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    parts = list(
        llm.stream_structured_predict(
            Track, PromptTemplate("A track called {title}, 300 seconds long."), title="'So What'"
        )
    )
    assert parts and parts[-1] == Track(title="So What", seconds=300)
    _verified(collector)


def test_structured_llm_chat(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    structured = llm.as_structured_llm(Track)
    response = structured.chat([ChatMessage(role="user", content="'Blue in Green', 337 s")])
    assert response.raw == Track(title="Blue in Green", seconds=337)
    # the structured wrapper ends its own chat span too: the inner Redpill response is verified
    (event,) = collector.named("RedpillVerificationEvent")
    assert event.verification["status"] == "verified"
