"""A LlamaIndex RAG pipeline with verified LLM calls; verdicts arrive as instrumentation events.

Settings come from the environment (see cookbook/README.md). MockEmbedding keeps the example
offline; use any embedding model in real pipelines.
"""

from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from redpill_integrations.llama_index import Redpill, RedpillVerificationEvent


class VerdictCollector(BaseEventHandler):
    verdicts: list[dict[str, Any]] = []

    @classmethod
    def class_name(cls) -> str:
        return "VerdictCollector"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, RedpillVerificationEvent):
            self.verdicts.append(event.verification)


def main() -> bool:
    collector = VerdictCollector(verdicts=[])
    get_dispatcher().add_event_handler(collector)

    documents = [
        Document(text="Redpill's phala/ models run inside NVIDIA H100/H200 GPU TEEs."),
        Document(text="Each response is signed by a key bound to the TEE by a TDX quote."),
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    llm = Redpill(model="phala/deepseek-chat-v3-0324")
    response = index.as_query_engine(llm=llm).query("Where do phala/ models run?")

    print(str(response).strip())
    for verdict in collector.verdicts:
        print(verdict["status"], verdict["chat_id"], "receipt", verdict["receipt_id"])
    get_dispatcher().event_handlers.remove(collector)
    return bool(collector.verdicts) and all(v["status"] == "verified" for v in collector.verdicts)


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
