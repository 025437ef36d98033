"""Several worker processes, one PostgreSQL receipt store, one trace per call.

    export REDPILL_RECEIPTS=postgresql://user:password@host/db
    python cookbook/multi_worker.py [WORKERS] [CALLS]

Each worker is its own process (as in a pool of agent or RAG workers): it opens the shared store
named by ``$REDPILL_RECEIPTS`` (``ReceiptStore.default()`` accepts a URL), installs an
OpenTelemetry tracer, and makes CALLS verified LangChain calls, each inside its own root span,
so each call is one trace. It prints one JSON line per call: the trace id, the verdict and its
receipt id. The parent checks that every call was verified and that every receipt is in the one
store afterwards. Needs the ``postgres`` and ``otel`` extras and ``opentelemetry-sdk``. Other
settings as in the other examples (REDPILL_API_KEY; REDPILL_BASE_URL and REDPILL_TRUST_FILE for
the local emulator).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def worker(index: int, calls: int) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from redpill_integrations import ReceiptStore
    from redpill_integrations.langchain import ChatRedpill, RedpillCallbackHandler

    # In production: an OTLP exporter to your collector. In memory here, to print what it got.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("cookbook.multi_worker")

    store = ReceiptStore.default()  # every worker opens the same store
    llm = ChatRedpill(model="phala/deepseek-chat-v3-0324", receipt_store=store)
    for i in range(calls):
        handler = RedpillCallbackHandler()
        with tracer.start_as_current_span("answer question") as span:  # a new trace per call
            llm.invoke(
                f"Worker {index}, question {i}: what is a TEE?", config={"callbacks": [handler]}
            )
        (result,) = handler.results
        attrs = dict(exporter.get_finished_spans()[-1].attributes or {})
        print(
            json.dumps(
                {
                    "trace_id": format(span.get_span_context().trace_id, "032x"),
                    "status": result.status.value,
                    "receipt_id": result.receipt_id,
                    "span_verdict": attrs.get("redpill.verification.status"),
                }
            ),
            flush=True,
        )
    store.close()


def main(workers: int = 4, calls: int = 5) -> bool:
    from redpill_integrations import ReceiptStore

    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(w), str(calls)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    lines: list[dict[str, str]] = []
    ok = True
    for proc in procs:
        out, _ = proc.communicate()
        ok = ok and proc.returncode == 0
        lines += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    with ReceiptStore.default() as store:
        stored = {r.receipt_id for r in store.iter_all()}
    ids = {line["receipt_id"] for line in lines}
    traces = {line["trace_id"] for line in lines}
    verified = sum(line["status"] == "verified" for line in lines)
    print(f"{workers} workers, {len(lines)} calls, {len(traces)} traces, {verified} verified")
    print(f"{len(ids & stored)}/{len(ids)} receipts in the shared store ({len(stored)} in all)")
    return ok and len(lines) == workers * calls == verified == len(traces) and ids <= stored


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(0 if main(*(int(a) for a in sys.argv[1:3])) else 1)
