"""What the receipt store adds to a verified call, at 200 concurrent calls, per backend.

    python benchmarks/bench_stores.py [--quick] [--rounds N]

The benchmark emulator runs in its own process (``bench_common.ServerProcess``); 200 verified
calls at a time (``AsyncOpenAI`` through the verifier's capturing client, ``averify``) write their
receipts to SQLite (a temporary file) and to PostgreSQL (a throwaway local cluster with fsync on,
``tests/support_postgres.py``; skipped when the server binaries are absent). Each receipt write is
timed where the verifier makes it (``put``, in the worker thread the wire layer runs it in,
including any wait for the store's lock or a pooled connection): that is what the store adds to
the call; a second row gives the writing thread's CPU time for the same writes (the wall time
above also holds waits: the disk's commit, other writers, and the GIL, which the 200 calls'
own verification work holds most of the time). A last row times ``aput`` on PostgreSQL's async
pool, 200 tasks at once, for the async path. Target: p99 under 2 ms. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_common import ServerProcess, Settings  # noqa: E402

CONCURRENCY = 200
TARGET_MS = 2.0


def _timed(store: Any, samples: list[float], cpu: list[float]) -> None:
    put = store.put

    def timed(receipt: Any) -> bool:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return bool(put(receipt))
        finally:
            samples.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)

    store.put = timed


async def _calls(base_url: str, trust: Any, store: Any, rounds: int, n: int) -> list[str]:
    import openai

    from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

    statuses: list[str] = []
    async with RedpillVerifier(
        base_url=base_url, api_key="sk-bench", trust=trust, receipt_store=store
    ) as v:
        sdks = [
            openai.AsyncOpenAI(
                base_url=base_url, api_key="sk-bench", http_client=v.async_http_client()
            )
            for _ in range(10)
        ]

        async def one(i: int) -> str:
            tag = v.recorder.new_tag()
            await sdks[i % 10].chat.completions.create(
                model="phala/gpt-oss-120b",
                extra_headers={CAPTURE_HEADER: tag},
                messages=[{"role": "user", "content": f"store bench {i}"}],
            )
            return (await v.averify(v.recorder.take(tag))).status.value

        for _ in range(rounds):
            statuses += await asyncio.gather(*(one(i) for i in range(n)))
        for sdk in sdks:
            await sdk.close()
    return statuses


def _row(name: str, samples: list[float]) -> tuple[str, int, float, float, float, bool]:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return name, len(ms), statistics.median(ms), p99, ms[-1], p99 < TARGET_MS


def run(argv: Sequence[str] | None = None) -> list[tuple[str, int, float, float, float, bool]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 200 concurrent calls")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also PostgreSQL with fsync off: the store's own cost without the disk's",
    )
    args = parser.parse_args(argv)
    n, rounds = (20, 1) if args.quick else (CONCURRENCY, args.rounds)
    settings = Settings.tiny() if args.quick else Settings.full()

    from redpill_integrations.policy import TrustAnchors
    from redpill_integrations.stores import ReceiptStore
    from tests.support_postgres import Cluster, find_bindir

    rows = []
    with ServerProcess(settings) as server, tempfile.TemporaryDirectory() as tmp:
        trust = TrustAnchors.from_file(server.trust_file)
        backends: list[tuple[str, Callable[[], Any]]] = [
            ("SQLite", lambda: ReceiptStore.open(f"sqlite://{tmp}/bench.sqlite3"))
        ]
        clusters: list[Cluster] = []
        bindir = find_bindir()
        if bindir is not None:
            clusters.append(Cluster(bindir, fsync=True))
            url = clusters[0].create_database()
            backends.append(("PostgreSQL", lambda: ReceiptStore.open(url)))
            if args.diagnose:
                clusters.append(Cluster(bindir, fsync=False))
                nosync = clusters[1].create_database()
                backends.append(
                    ("PostgreSQL, fsync off (diagnostic)", lambda: ReceiptStore.open(nosync))
                )
        try:
            for name, opener in backends:
                store = opener()
                asyncio.run(_calls(server.base_url, trust, store, 1, n))  # warm-up
                samples: list[float] = []
                cpu: list[float] = []
                _timed(store, samples, cpu)
                statuses = asyncio.run(_calls(server.base_url, trust, store, rounds, n))
                assert set(statuses) == {"verified"}, statuses
                assert len(samples) == rounds * n
                rows.append(_row(f"{name}: put in a verified call", samples))
                rows.append(_row(f"{name}: put, CPU of the writing thread", cpu))
                if name.startswith("PostgreSQL"):
                    rows.append(_row(f"{name}: aput (async pool)", _aputs(store, rounds, n)))
                store.close()
        finally:
            for cluster in clusters:
                cluster.destroy()
    return rows


def _aputs(store: Any, rounds: int, n: int) -> list[float]:
    import dataclasses

    template = store.list(limit=1)[0]
    samples: list[float] = []

    async def go() -> None:
        async def one(rid: str) -> None:
            t0 = time.perf_counter()
            await store.aput(dataclasses.replace(template, receipt_id=rid))
            samples.append(time.perf_counter() - t0)

        for r in range(rounds + 1):
            batch = [one(f"aput-{r}-{i}") for i in range(n)]
            if r == 0:  # warm-up: opens the async pool
                await asyncio.gather(*batch)
                samples.clear()
                continue
            await asyncio.gather(*batch)
        await store.aclose()

    asyncio.run(go())
    return samples


def markdown(rows: list[tuple[str, int, float, float, float, bool]]) -> str:
    out = [
        "| receipt write (200 concurrent verified calls) | writes | p50 ms | p99 ms | max ms |"
        " p99 < 2 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, count, p50, p99, worst, met in rows:
        out.append(
            f"| {name} | {count} | {p50:.2f} | {p99:.2f} | {worst:.2f} | "
            f"{'met' if met else '**not met**'} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(run()))
