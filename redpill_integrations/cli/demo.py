"""``redpill demo``: the package end to end, in well under a minute.

Without ``REDPILL_API_KEY`` it starts the embedded emulator in its default protocol, ACI, as
api.redpill.ai serves it (a development tool, not a TEE: every verdict then rests on the
emulator's own test PKI and test KMS) and scripts its replies; with a key it runs the same steps
against api.redpill.ai (or ``REDPILL_BASE_URL``) and production trust anchors. Each verdict line
names its protocol and, under ACI, the upstream the gateway verified. Steps:

1. a LangChain tool-calling loop with ``ChatRedpill`` (each model call verified);
2. a streamed LangChain answer (the verdict arrives on the last chunk);
3. a LlamaIndex RAG query with the ``Redpill`` LLM (verdict via instrumentation events);
4. the trust chain behind one verdict (under ACI: the gateway's), and an offline
   re-verification of its stored receipt.

Requires the ``langchain`` and ``llama-index`` extras (``pip install redpill-integrations[all]``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from redpill_integrations.cli.display import printable, render_trust_chain
from redpill_integrations.cli.display_aci import (
    chain_from_result,
    render_gateway_chain,
    render_verdict,
)
from redpill_integrations.policy import DEFAULT_BASE_URL, TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import reverify
from redpill_integrations.results import Status, VerificationResult
from redpill_integrations.stores.sqlite import SQLiteReceiptStore
from redpill_integrations.wire import RedpillVerifier

__all__ = ["DEMO_MODEL", "run_demo"]

DEMO_MODEL = "phala/deepseek-chat-v3-0324"
DEFAULT_DEMO_STORE = Path(".redpill") / "demo-receipts.sqlite3"

_DOCS = [
    "Redpill serves OpenAI-compatible chat models; its confidential models run inside GPU TEEs.",
    "An attested gateway signs a receipt over the exact bytes of every request and response.",
    "The gateway's TDX quote binds its receipt keys; it verifies each upstream TEE it forwards to.",
]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _line(result: VerificationResult) -> str:
    reasons = f" ({', '.join(r.value for r in result.reasons)})" if result.reasons else ""
    line = f"{result.status.value.upper()}{reasons} [{result.protocol}]"
    upstream = result.aci.upstream if result.aci else None
    if upstream is not None:
        by = f"{printable(upstream.provider)} serving " if upstream.provider else ""
        line += f"  upstream {by}{printable(upstream.model_id)}: {printable(upstream.result)}"
    return f"{line}  receipt {printable(result.receipt_id)}"


def _script_emulator(emu: Any) -> None:
    from redpill_integrations.emulator import Reply

    emu.script(
        replies=[
            Reply.tool_call("get_weather", {"city": "Paris"}),
            Reply.text("It is 18°C and sunny in Paris, verified end to end."),
            Reply.text("Verified provenance means every answer carries proof of where it ran."),
            Reply.text("Inside GPU TEEs, behind a gateway that signs a receipt for every answer."),
        ]
    )


def _langchain_steps(
    verifier: RedpillVerifier, model: str, key: str, base_url: str
) -> list[VerificationResult]:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    from redpill_integrations.langchain import ChatRedpill

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"18°C and sunny in {city}"

    llm = ChatRedpill(
        model=model,
        api_key=SecretStr(key),
        base_url=base_url,
        verifier=verifier,
        verification="strict",
    )
    results: list[VerificationResult] = []

    _say("── 1. LangChain: a tool-calling loop with ChatRedpill")
    messages: list[Any] = [HumanMessage("What is the weather in Paris? Use the tool.")]
    ai = llm.bind_tools([get_weather]).invoke(messages)
    results.append(VerificationResult.from_dict(ai.response_metadata["redpill_verification"]))
    tools = printable([c["name"] for c in ai.tool_calls])
    _say(f"   model asked for tools {tools}: {_line(results[-1])}")
    messages.append(ai)
    for call in ai.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = llm.invoke(messages)
    results.append(VerificationResult.from_dict(final.response_metadata["redpill_verification"]))
    _say(f"   answer: {printable(final.content, multiline=True)}")
    _say(f"   {_line(results[-1])}")

    _say("── 2. LangChain: a streamed answer")
    verdict: dict[str, Any] | None = None
    sys.stdout.write("   ")
    for chunk in llm.stream("In one sentence: what does verified provenance mean?"):
        sys.stdout.write(printable(chunk.content, multiline=True))
        sys.stdout.flush()
        verdict = chunk.response_metadata.get("redpill_verification") or verdict
    _say()
    if verdict is None:
        raise RuntimeError("the stream ended without a verdict")
    results.append(VerificationResult.from_dict(verdict))
    _say(f"   {_line(results[-1])}")
    return results


def _llama_index_step(
    verifier: RedpillVerifier, model: str, key: str, base_url: str
) -> VerificationResult:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    from redpill_integrations.llama_index import Redpill, RedpillVerificationEvent

    seen: list[dict[str, Any]] = []

    class Collector(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "DemoVerificationCollector"

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, RedpillVerificationEvent):
                seen.append(event.verification)

    _say("── 3. LlamaIndex: a RAG query with the Redpill LLM")
    root = get_dispatcher()
    handler = Collector()
    root.add_event_handler(handler)
    try:
        llm = Redpill(
            model=model, api_key=key, api_base=base_url, verifier=verifier, verification="strict"
        )
        index = VectorStoreIndex.from_documents(
            [Document(text=t) for t in _DOCS], embed_model=MockEmbedding(embed_dim=8)
        )
        answer = index.as_query_engine(llm=llm).query("Where do confidential models run?")
    finally:
        root.event_handlers.remove(handler)
    _say(f"   answer: {printable(str(answer).strip(), multiline=True)}")
    if not seen:
        raise RuntimeError("the RAG query produced no verification event")
    result = VerificationResult.from_dict(seen[-1])
    _say(f"   {_line(result)}")
    return result


def run_demo(*, store_path: str | None = None) -> int:
    """Run the demo; returns 0 when every verdict is ``verified``, else the CLI's status code."""
    key = os.environ.get("REDPILL_API_KEY")
    model = os.environ.get("REDPILL_DEMO_MODEL", DEMO_MODEL)
    store = SQLiteReceiptStore(store_path or DEFAULT_DEMO_STORE)
    with contextlib.ExitStack() as stack:
        if key:
            trust = TrustAnchors.from_env()
            base_url = os.environ.get("REDPILL_BASE_URL", DEFAULT_BASE_URL)
            _say(f"Redpill demo against {printable(base_url)} with model {printable(model)}")
        else:
            from redpill_integrations.emulator import Emulator

            emu = stack.enter_context(Emulator())
            _script_emulator(emu)
            trust, base_url, key = emu.trust, emu.base_url, emu.api_key
            _say(f"Redpill demo against the EMBEDDED EMULATOR ({emu.protocol}) at {base_url}")
            _say("(no REDPILL_API_KEY set: the emulator is a local development tool, NOT a")
            _say(" real TEE; its verdicts rest on its own test PKI. Set REDPILL_API_KEY to use")
            _say(" Redpill itself.)")
        _say()
        # ACI: also check each upstream session record, which names the provider and its claims
        policy = VerificationPolicy(check_session=True)
        verifier = stack.enter_context(
            RedpillVerifier(
                base_url=base_url, api_key=key, trust=trust, receipt_store=store, policy=policy
            )
        )
        results = _langchain_steps(verifier, model, key, base_url)
        results.append(_llama_index_step(verifier, model, key, base_url))

        last = results[-1]
        if last.protocol == "aci":
            _say("── 4. The trust chain behind the last verdict: the ACI gateway's")
            names = {h: image.name for h, image in trust.os_images.items() if image.name}
            _say(render_gateway_chain(chain_from_result(last, os_image_names=names)))
        else:
            _say("── 4. The trust chain behind the last verdict")
            _say(render_trust_chain(last.attestation, last.checks))
        _say()
        _say(
            f"── 5. Offline re-verification of receipt {printable(last.receipt_id)}"
            f" from {printable(store.path)}"
        )
        receipt = store.get(last.receipt_id) if last.receipt_id else None
        if receipt is None:
            _say("   receipt not found in the store")
            return 3
        again = reverify(receipt, trust=trust)
        _say(render_verdict(again))
        same = again.status == receipt.result.status and again.reasons == receipt.result.reasons
        _say(f"   offline verdict matches the original: {'yes' if same else 'NO'}")

    statuses = [r.status for r in (*results, again)]
    _say()
    _say(
        f"{sum(s is Status.VERIFIED for s in statuses)}/{len(statuses)} verdicts verified; "
        f"{len(store)} receipt(s) in {store.path}"
    )
    if all(s is Status.VERIFIED for s in statuses) and same:
        return 0
    return 1 if any(s is Status.FAILED for s in statuses) else 3
