"""Deeply nested JSON from each server a verification talks to (see _deep_child.py).

Each row runs in its own child process (all started at once), because nesting can overflow the C
stack and kill the interpreter. For every row: the process survives, no undocumented exception
escapes, exactly one receipt holds the exact bytes, and the verdict is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
U, F, V = "unverifiable", "failed", "verified"

# One child per (adapter, eth_account imported?); a child runs its rows in order, so the row that
# may kill it comes last. id: (child, target, depth, status, reasons, xfail reason)
CHILDREN = {"lc": ("lc",), "li": ("li",), "li-eth": ("li", "eth")}
ROWS: dict[str, tuple[str, str, int, str, tuple[str, ...], str | None]] = {
    "signature-answer": ("lc", "signature", 30_000, U, ("MALFORMED_RESPONSE",), None),
    "report": ("lc", "report", 100_000, U, ("MALFORMED_RESPONSE",), None),
    "pccs-tcb-info": ("lc", "pccs", 100_000, U, ("DEPENDENCY_UNAVAILABLE",), None),
    "nras-answer": ("lc", "nras", 100_000, F, ("GPU_TOKEN_INVALID",), None),
    # the SDK cannot parse the body: ResponseUnreadable (an openai.APIError); the wire reads no
    # response id from a body nested beyond its depth guard, so no signature can be looked up
    "chat-body-lc": ("lc", "chat", 100_000, U, ("MALFORMED_RESPONSE",), None),
    "chat-body-li": ("li", "chat", 100_000, U, ("MALFORMED_RESPONSE",), None),
    "report-eth-account-loaded": ("li-eth", "report", 100_000, U, ("MALFORMED_RESPONSE",), None),
    "chat-body-eth-account-loaded": ("li-eth", "chat", 100_000, U, ("MALFORMED_RESPONSE",), None),
}


@pytest.fixture(scope="module")
def children() -> dict[str, tuple[int, dict[str, Any], str]]:
    """Start every child at once, then collect: rc, reports by target, stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for name, args in CHILDREN.items():
        rows = [f"{t}:{d}" for child, t, d, *_ in ROWS.values() if child == name]
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._deep_child", *args, *rows],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=240)
        reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        out[name] = (proc.returncode, {r["target"]: r for r in reports}, stderr)
    return out


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(r, marks=[pytest.mark.xfail(strict=True, reason=x)] if x else [])
        for r, (*_, x) in ROWS.items()
    ],
)
def test_deeply_nested_json(children: dict[str, tuple[int, dict[str, Any], str]], row: str) -> None:
    child, target, _, status, reasons, _ = ROWS[row]
    rc, reports, stderr = children[child]
    assert target in reports, f"child died before this row (rc {rc}): {stderr[-600:]}"
    report = reports[target]
    assert report["escaped"] is None
    assert report["receipts"] == 1 and report["receipt_ok"] is True
    assert (report["receipt_status"], tuple(report["receipt_reasons"])) == (status, reasons)
    if "status" in report:  # returned (annotate mode): the same verdict, the content intact
        assert (report["status"], tuple(report["reasons"])) == (status, reasons)
        assert report["content_ok"] is True
    assert report["seconds"] < 10
    if row == list(ROWS)[-1] or ROWS[list(ROWS)[list(ROWS).index(row) + 1]][0] != child:
        assert rc == 0, f"child died (rc {rc}): {stderr[-600:]}"  # its last row
