"""benchmarks/bench_stores.py must keep running: ``--quick`` end to end (no timing asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support_postgres import find_bindir

pytestmark = pytest.mark.perf

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_stores.py"


def test_quick_store_benchmark_times_every_backend() -> None:
    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries absent")
    spec = importlib.util.spec_from_file_location("redpill_bench_stores", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run(["--quick"])
    assert [r[0] for r in rows] == [
        "SQLite: put in a verified call",
        "SQLite: put, CPU of the writing thread",
        "PostgreSQL: put in a verified call",
        "PostgreSQL: put, CPU of the writing thread",
        "PostgreSQL: aput (async pool)",
    ]
    assert all(r[1] == 20 and 0 <= r[2] <= r[3] <= r[4] for r in rows)
    assert "| SQLite: put in a verified call | 20 |" in module.markdown(rows)
