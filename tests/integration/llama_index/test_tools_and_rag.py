"""Function calling, agents, structured output and RAG on top of ``Redpill``: llama-index's own
code drives the calls, and every LLM response it receives carries a ``verified`` verdict."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from redpill_integrations.emulator import Emulator, Reply
from redpill_integrations.llama_index import Redpill

from .conftest import Collector, verdict

# workflows' step discovery runs inspect.getmembers over the pydantic agent (upstream noise)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Album(BaseModel):
    """An album and its year."""

    title: str
    year: int


def _verified_responses(collector: Collector, end_event: str = "LLMChatEndEvent") -> list[Any]:
    responses = [e.response for e in collector.named(end_event)]
    events = collector.named("RedpillVerificationEvent")
    assert len(events) == len(responses) > 0
    for response, event in zip(responses, events, strict=True):
        assert verdict(response)["status"] == "verified"
        assert event.verification == verdict(response)
    return responses


def test_predict_and_call(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    emu.script(replies=[Reply.tool_call("multiply", {"a": 6, "b": 7})])
    answer = llm.predict_and_call([FunctionTool.from_defaults(fn=multiply)], "What is 6 x 7?")
    assert answer.response == "42" and answer.sources[0].tool_name == "multiply"
    (response,) = _verified_responses(collector)
    assert response.message.additional_kwargs["tool_calls"][0].function.name == "multiply"


async def test_function_agent(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    emu.script(replies=[Reply.tool_call("multiply", {"a": 6, "b": 7}), Reply.text("It is 42.")])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)
    output = await agent.run(user_msg="What is 6 x 7?")
    assert str(output.response.content) == "It is 42."
    # the agent streams: each turn's last response is the trailing one with the verdict
    responses = _verified_responses(collector)
    assert len(responses) == 2 and all(r.delta == "" for r in responses)
    assert len({verdict(r)["chat_id"] for r in responses}) == 2


def test_structured_predict(emu: Emulator, llm: Redpill, collector: Collector) -> None:
    emu.script(replies=[Reply.tool_call("Album", {"title": "Blue Train", "year": 1958})])
    album = llm.structured_predict(
        Album, PromptTemplate("Name an album by {artist}."), artist="John Coltrane"
    )
    assert album == Album(title="Blue Train", year=1958)
    _verified_responses(collector)


def test_rag_query_engine_answer_is_verified(
    emu: Emulator, llm: Redpill, collector: Collector
) -> None:
    docs = [
        Document(text="The signing key never leaves the TEE."),
        Document(text="Receipts re-verify offline."),
    ]
    index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
    emu.script(replies=[Reply.text("It never leaves the TEE.")])
    answer = index.as_query_engine(llm=llm).query("Where is the signing key?")
    assert str(answer) == "It never leaves the TEE." and len(answer.source_nodes) == 2
    (response,) = _verified_responses(collector)
    assert response.message.content == str(answer)
