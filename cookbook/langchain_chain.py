"""A LangChain chain whose model call is verified, with the verdicts of the run collected.

Settings come from the environment: REDPILL_API_KEY, and, for the local emulator,
REDPILL_BASE_URL and REDPILL_TRUST_FILE (see cookbook/README.md).
"""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from redpill_integrations import ReceiptStore
from redpill_integrations.langchain import ChatRedpill, RedpillCallbackHandler


def main() -> bool:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one sentence."), ("user", "Explain {topic} to an auditor.")]
    )
    # Receipts go to $REDPILL_RECEIPTS or ~/.redpill/receipts.sqlite3: audit them later offline.
    llm = ChatRedpill(model="phala/deepseek-chat-v3-0324", receipt_store=ReceiptStore.default())
    chain = prompt | llm | StrOutputParser()

    handler = RedpillCallbackHandler()  # collects one verdict per model call of the run
    answer = chain.invoke({"topic": "confidential computing"}, config={"callbacks": [handler]})

    print(answer)
    for result in handler.results:
        print(result.status.value, result.chat_id, "receipt", result.receipt_id, result.protocol)
    return handler.all_verified


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
