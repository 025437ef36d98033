"""A LangGraph agent whose every model step is verified (strict mode: an unverified step raises).

Settings come from the environment (see cookbook/README.md).
"""

from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from redpill_integrations.langchain import ChatRedpill, RedpillCallbackHandler


@tool
def lookup_policy(topic: str) -> str:
    """Look up the internal data-handling policy for a topic."""
    return f"Policy for {topic}: process only inside attested TEEs; keep receipts for 7 years."


def main() -> bool:
    llm = ChatRedpill(model="phala/deepseek-chat-v3-0324", verification="strict")
    model = llm.bind_tools([lookup_policy])

    def call_model(state: MessagesState) -> dict[str, list[object]]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([lookup_policy]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)  # tool calls → tools, else end
    graph.add_edge("tools", "model")
    agent = graph.compile()

    handler = RedpillCallbackHandler()
    state = agent.invoke(
        {"messages": [("user", "What is our policy for patient records? Use the tool.")]},
        config={"callbacks": [handler]},
    )

    print(state["messages"][-1].content)
    print(handler.summary())
    # every model step carries its own verdict
    for message in state["messages"]:
        verdict = getattr(message, "response_metadata", {}).get("redpill_verification")
        if verdict:
            print(f"  step {verdict['chat_id']}: {verdict['status']}")
    return handler.all_verified and len(handler.results) >= 1


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
