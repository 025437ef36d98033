"""The benchmark must keep running: ``benchmarks/run.py --quick`` end to end, tiny counts.

No timing is asserted (the numbers are the benchmark's business); only that every section ran,
produced its measurements with their targets, and that every verified call was ``verified``.
It talks to the benchmark's own emulator process on loopback.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.perf

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redpill_benchmarks_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_runs_every_section_with_targets(tmp_path: Path) -> None:
    run = _load()
    level = logging.getLogger("redpill_integrations").level
    out = tmp_path / "results.md"
    table = run.run(["--quick", "--markdown", str(out)])
    assert logging.getLogger("redpill_integrations").level == level  # global state restored

    assert table.errors == []  # every verified call was verified
    sections = {row.section.split(" (")[0] for row in table.rows}
    assert sections == {
        "our CPU",
        "attestation",
        "ACI",
        "latency",
        "streaming",
        "concurrency",
        "memory",
    }
    targets = [row for row in table.rows if row.target]
    # own CPU, cold attestation CPU, memory growth; per framework: client CPU per call, TTFT,
    # throughput of JSON and of streamed calls, each on bare loopback and with latencies
    assert len([row for row in targets if not row.section.startswith("ACI")]) == 3 + 2 * 6
    throughput = [row for row in targets if row.measurement.startswith("throughput")]
    assert {row.target for row in throughput} == {">= 60% of plain", ">= 80% of plain"}
    assert all(row.met in (True, False) for row in targets)
    aci = [row for row in table.rows if row.section.startswith("ACI")]
    assert len(aci) == 2  # measured with their targets, or saying why they were not
    assert all(row.target or row.value.startswith("not measured: ") for row in aci)
    text = out.read_text(encoding="utf-8")
    assert "## Machine" in text and "nproc" in text
    assert all(row.measurement in text for row in table.rows)
