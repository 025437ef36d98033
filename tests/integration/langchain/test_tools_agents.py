"""Tool calling, structured output, a LangGraph agent loop, plain ChatOpenAI, and concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from redpill_integrations import ReceiptStore, RedpillVerifier
from redpill_integrations.emulator import Emulator, Reply
from redpill_integrations.langchain import VERDICT_KEY, ChatRedpill, RedpillCallbackHandler
from redpill_integrations.results import Reason, Status

from .conftest import MODEL

Chat = Callable[..., ChatRedpill]


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    celsius: int


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def verdict(message: Any) -> dict[str, Any]:
    assert isinstance(message, AIMessage)
    return dict(message.response_metadata[VERDICT_KEY])


def test_bind_tools_tool_call_is_verified(make_chat: Chat, emu: Emulator) -> None:
    emu.script(MODEL, [Reply.tool_call("add", {"a": 2, "b": 3})] * 2)
    bound = make_chat().bind_tools([add])
    message = bound.invoke("what is 2 + 3?")
    assert message.tool_calls[0]["name"] == "add" and message.tool_calls[0]["args"] == {
        "a": 2,
        "b": 3,
    }
    assert verdict(message)["status"] == "verified"
    chunks = list(bound.stream("again"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.tool_calls[0]["args"] == {"a": 2, "b": 3}
    assert verdict(full)["status"] == "verified"


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("function_calling", Reply.tool_call("Weather", {"city": "Oslo", "celsius": -3})),
        ("json_schema", Reply.json({"city": "Oslo", "celsius": -3})),
        ("json_mode", Reply.json({"city": "Oslo", "celsius": -3})),
    ],
)
async def test_structured_output_raw_message_carries_the_verdict(
    make_chat: Chat, emu: Emulator, method: str, reply: Reply
) -> None:
    emu.script(MODEL, [reply, reply])
    structured = make_chat().with_structured_output(Weather, method=method, include_raw=True)  # type: ignore[arg-type]
    for out in (structured.invoke("Oslo?"), await structured.ainvoke("Oslo?")):
        assert isinstance(out, dict) and out["parsing_error"] is None
        assert out["parsed"] == Weather(city="Oslo", celsius=-3)
        assert verdict(out["raw"])["status"] == "verified"


def react_graph(chat: ChatRedpill) -> Any:
    """A minimal ReAct loop: model → tools → model … until no tool call."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    bound = chat.bind_tools([add])

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([add]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


@pytest.mark.parametrize("streamed", [False, True])
async def test_langgraph_agent_every_step_is_verified(
    make_chat: Chat, emu: Emulator, streamed: bool
) -> None:
    emu.script(
        MODEL,
        [
            Reply.tool_call("add", {"a": 2, "b": 3}),
            Reply.tool_call("add", {"a": 5, "b": 4}),
            Reply.text("The answer is 9."),
        ],
    )
    handler = RedpillCallbackHandler()
    agent = react_graph(make_chat(streaming=streamed))
    state = await agent.ainvoke({"messages": [("user", "2+3, then +4?")]}, {"callbacks": [handler]})
    ai_messages = [m for m in state["messages"] if isinstance(m, AIMessage)]
    assert [m.content for m in ai_messages][-1] == "The answer is 9."
    assert [str(m.content) for m in state["messages"] if m.type == "tool"] == ["5", "9"]
    chat_ids = [verdict(m)["chat_id"] for m in ai_messages]
    assert len(ai_messages) == 3 and len(set(chat_ids)) == 3
    assert handler.all_verified and [r.chat_id for r in handler.results] == chat_ids
    assert [e["chat_id"] for e in handler.events] == chat_ids
    assert handler.summary()["verified"] == 3


def plain_chat_openai(emu: Emulator, verifier: RedpillVerifier, model: str = MODEL) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=emu.base_url,
        api_key=emu.api_key,  # type: ignore[arg-type]
        http_client=verifier.http_client(),
        http_async_client=verifier.async_http_client(),
        max_retries=0,
    )


async def test_handler_verifies_a_plain_chat_openai_by_its_run(
    emu: Emulator, make_verifier: Callable[..., RedpillVerifier], store: ReceiptStore
) -> None:
    verifier = make_verifier()
    handler = RedpillCallbackHandler(verifier=verifier)
    llm = plain_chat_openai(emu, verifier)
    sync_msg = llm.invoke("hello", config={"callbacks": [handler]})
    async_msg = await llm.ainvoke("hello", config={"callbacks": [handler]})
    assert [r.chat_id for r in handler.results] == [
        sync_msg.response_metadata["id"],
        async_msg.response_metadata["id"],
    ]
    assert handler.all_verified and len(store) == 2
    chunks = list(llm.stream("streamed", config={"callbacks": [handler]}))
    achunks = [c async for c in llm.astream("streamed", config={"callbacks": [handler]})]
    # streams verify too: the exchange is filed under the run, no chat id needed
    assert [r.status for r in handler.results[-2:]] == [Status.VERIFIED, Status.VERIFIED]
    assert "".join(str(c.content) for c in chunks) == "".join(str(c.content) for c in achunks)
    assert len({r.chat_id for r in handler.results}) == 4
    assert handler.all_verified and len(store) == 4
    assert len(verifier.recorder) == 0 and verifier.recorder.retained_bytes == 0


def test_handler_plain_chat_openai_without_capture_is_not_verified(
    emu: Emulator, make_verifier: Callable[..., RedpillVerifier]
) -> None:
    handler = RedpillCallbackHandler(verifier=make_verifier())
    llm = ChatOpenAI(model=MODEL, base_url=emu.base_url, api_key=emu.api_key)  # type: ignore[arg-type]
    llm.invoke("hello", config={"callbacks": [handler]})
    (record,) = handler.results
    assert record.status is Status.UNVERIFIABLE and record.reasons == (Reason.CHECK_NOT_RUN,)


async def test_fifty_parallel_ainvoke_each_with_its_own_verdict(
    make_chat: Chat, emu: Emulator, store: ReceiptStore
) -> None:
    chat = make_chat()
    messages = await asyncio.gather(*[chat.ainvoke(f"question {i}") for i in range(50)])
    for i, message in enumerate(messages):
        v = verdict(message)
        assert v["status"] == "verified"
        assert v["chat_id"] == message.response_metadata["id"]
        assert str(message.content).endswith(f"question {i}")
        receipt = store.get(v["receipt_id"])
        assert receipt is not None and receipt.result.chat_id == v["chat_id"]
    assert len({verdict(m)["chat_id"] for m in messages}) == 50 and len(store) == 50
    assert emu.stats.attestation_fetches == 1
