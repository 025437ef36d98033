"""Verdicts reach the OpenTelemetry spans of a LangChain chain and a LlamaIndex query.

``RedpillVerifier`` calls ``record_verdict`` in the context of the verified call, so the span
current around a chain or a query is the one that receives the verdict (sync, async and through
LlamaIndex's query engine), with no wiring by the user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core import Document, MockEmbedding, VectorStoreIndex
from opentelemetry import trace

from redpill_integrations import ReceiptStore, RedpillVerifier
from redpill_integrations.emulator import Emulator
from redpill_integrations.langchain import ChatRedpill
from redpill_integrations.llama_index import Redpill
from tests.support_otel import telemetry

MODEL = "phala/gpt-oss-120b"


@pytest.fixture
def spans() -> Iterator[Any]:
    exporter, _ = telemetry()
    exporter.clear()
    yield exporter


@pytest.fixture
def verifier(emu: Emulator, tmp_path: Path) -> Iterator[RedpillVerifier]:
    store = ReceiptStore(tmp_path / "r.sqlite3")
    with RedpillVerifier(
        base_url=emu.base_url, api_key=emu.api_key, trust=emu.trust, receipt_store=store
    ) as v:
        yield v


def _verdict_span(exporter: Any, name: str, verifier: RedpillVerifier) -> dict[str, Any]:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    attrs = dict(span.attributes or {})
    assert attrs["redpill.verification.status"] == "verified"
    assert attrs["redpill.verification.reasons"] == ()
    assert attrs["redpill.verification.protocol"] == "legacy"
    assert attrs["gen_ai.response.model"] == MODEL
    store = verifier.receipt_store
    assert store is not None
    receipt = store.get(attrs["redpill.verification.receipt_id"])
    assert receipt is not None and receipt.chat_id == attrs["gen_ai.response.id"]
    assert attrs["redpill.verification.signer"] == receipt.result.signer
    return attrs


def _chain(emu: Emulator, verifier: RedpillVerifier) -> Any:
    llm = ChatRedpill(
        model=MODEL, base_url=emu.base_url, api_key=emu.api_key, verifier=verifier, max_retries=0
    )
    return ChatPromptTemplate.from_messages([("user", "{q}")]) | llm | StrOutputParser()


def test_a_langchain_chain_span_carries_the_verdict(
    emu: Emulator, verifier: RedpillVerifier, spans: Any
) -> None:
    with trace.get_tracer("app").start_as_current_span("chain"):
        assert _chain(emu, verifier).invoke({"q": "hi"})
    _verdict_span(spans, "chain", verifier)


async def test_an_async_langchain_chain_span_carries_the_verdict(
    emu: Emulator, verifier: RedpillVerifier, spans: Any
) -> None:
    with trace.get_tracer("app").start_as_current_span("achain"):
        assert await _chain(emu, verifier).ainvoke({"q": "hi"})
    _verdict_span(spans, "achain", verifier)


def test_a_llama_index_query_span_carries_the_verdict(
    emu: Emulator, verifier: RedpillVerifier, spans: Any
) -> None:
    llm = Redpill(
        model=MODEL, api_key=emu.api_key, api_base=emu.base_url, verifier=verifier, max_retries=0
    )
    index = VectorStoreIndex.from_documents(
        [Document(text="Receipts re-verify offline.")], embed_model=MockEmbedding(embed_dim=8)
    )
    with trace.get_tracer("app").start_as_current_span("query"):
        assert str(index.as_query_engine(llm=llm).query("What re-verifies?"))
    _verdict_span(spans, "query", verifier)
