#!/usr/bin/env python3
"""The cost of verified provenance, measured against plain clients (``./dev bench``).

Usage: ``benchmarks/run.py [--quick] [--only SECTION ...] [--markdown FILE]``

Starts the emulator in a child process (so its CPU is metered apart from the client's), then
runs each section and prints one table: measurement, target, met / NOT MET. See README.md here.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # our modules; the working tree's package

from bench_common import ServerProcess, Settings, Table, machine  # noqa: E402

SECTIONS = ("cpu", "attestation", "aci", "latency", "streaming", "concurrency", "memory")


def run(argv: Sequence[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test), seconds")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    args = parser.parse_args(argv)
    settings = Settings.tiny() if args.quick else Settings.full()
    wanted = set(args.only or SECTIONS)
    package_logger = logging.getLogger("redpill_integrations")
    level = package_logger.level
    package_logger.setLevel(logging.ERROR)  # the emulator trust file's warning, once per client
    try:
        return _run(settings, wanted, args.markdown)
    finally:
        package_logger.setLevel(level)


def _run(settings: Settings, wanted: set[str], markdown_path: str | None) -> Table:

    import bench_core
    import bench_frameworks as fw
    import bench_load

    from redpill_integrations.policy import TrustAnchors

    table = Table()
    started = time.perf_counter()
    host = machine()  # at the start: the load average before we add ours
    print("machine:", "; ".join(f"{k}: {v}" for k, v in host[1:6]), flush=True)
    with ServerProcess(settings) as server:
        trust = TrustAnchors.from_file(server.trust_file)
        key = "sk-redpill-emulator"
        from bench_server import LATENCY_MODEL, SMALL_MODEL, STREAM_MODEL

        if "cpu" in wanted:
            _section("== our own CPU per verified call (10 KB response)", started)
            bench_core.own_cpu(server, trust, key, LATENCY_MODEL, settings, table)
        if "attestation" in wanted:
            _section("== attestation: cold and warm", started)
            bench_core.attestation(server, trust, key, SMALL_MODEL, settings, table)
        if "aci" in wanted:
            _section("== ACI: our own CPU per verified call, cold attestation", started)
            import bench_aci

            bench_aci.aci(settings, key, LATENCY_MODEL, table)
        pairs = []
        if wanted & {"latency", "streaming", "concurrency"}:
            pairs = [
                (fw.langchain_pair, LATENCY_MODEL, STREAM_MODEL, SMALL_MODEL),
                (fw.llama_index_pair, LATENCY_MODEL, STREAM_MODEL, SMALL_MODEL),
            ]
        if "latency" in wanted:
            for make, model, _, _ in pairs:
                _section(f"== non-streamed latency ({make.__name__})", started)
                fw.latency(make(server, trust, key, model), settings, table)
        if "streaming" in wanted:
            for make, _, model, _ in pairs:
                _section(f"== streaming ({make.__name__})", started)
                fw.streaming(make(server, trust, key, model), settings, table)
        if "concurrency" in wanted:
            _section("== concurrency on bare loopback (client-CPU-bound)", started)
            fw.concurrency(
                [
                    (make(server, trust, key, model), streamed)
                    for make, _, long_model, short_model in pairs
                    for model, streamed in ((short_model, False), (long_model, True))
                ],
                settings,
                server,
                table,
            )
            _section("== concurrency with realistic latencies", started)
            with ServerProcess(settings, latency=settings.realistic) as slow:
                slow_trust = TrustAnchors.from_file(slow.trust_file)
                fw.concurrency(
                    [
                        (make(slow, slow_trust, key, model), streamed)
                        for make, _, long_model, short_model in pairs
                        for model, streamed in ((short_model, False), (long_model, True))
                    ],
                    settings,
                    slow,
                    table,
                )
        if "memory" in wanted:
            _section("== memory over many verified calls", started)
            bench_load.memory(server, trust, key, LATENCY_MODEL, settings, table)
    elapsed = time.perf_counter() - started
    print(f"\n(total {elapsed:.0f} s)\n", flush=True)
    print(table.render_text(), flush=True)
    for error in table.errors:
        print(f"ERROR: {error}", flush=True)
    if markdown_path:
        Path(markdown_path).write_text(markdown(table, elapsed, host), encoding="utf-8")
    return table


def _section(title: str, started: float) -> None:
    print(f"{title}  [t={time.perf_counter() - started:.1f} s]", flush=True)


def markdown(table: Table, elapsed: float, host: list[tuple[str, str]]) -> str:
    lines = ["## Machine", ""]
    lines += [f"- **{k}**: {v}" for k, v in host]
    lines += ["", f"Whole run: {elapsed:.0f} s.", "", "## Results", "", table.render_markdown()]
    if table.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """0 unless a verified call was not ``verified`` (a missed target is reported, not fatal:
    on a shared machine timings are noisy)."""
    table = run(argv)
    return 1 if table.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
