"""A process killed with SIGKILL while writing receipts loses none it reported as completed.

The child (_crash_child.py) prints each receipt id after the exchange completed; the parent kills
it mid-loop (raw puts of ~200 KB receipts, or real calls through ChatRedpill / Redpill to the
emulator), then reopens the store: it opens cleanly, passes SQLite's integrity check, holds every
reported receipt intact, and accepts new writes.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.receipts import ReceiptStore

from .conftest import MODEL

ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(argv: list[str], at_least: int, rng: random.Random) -> list[tuple[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability._crash_child", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    done: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 120
        while len(done) < at_least and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            rid, chat_id = line.split()
            done.append((rid, chat_id))
        time.sleep(rng.uniform(0.0, 0.05))  # kill at an arbitrary point of a later write
        os.kill(proc.pid, signal.SIGKILL)
        # lines printed before the kill landed are completed exchanges too
        for line in proc.stdout:
            if line.count(" ") == 1 and line.endswith("\n"):
                rid, chat_id = line.split()
                done.append((rid, chat_id))
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert len(done) >= at_least, "the child did not get going"
    return done


def _check_store(path: Path, done: list[tuple[str, str]]) -> None:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = ReceiptStore(path)
    try:
        for rid, chat_id in done:
            receipt = store.get(rid)
            assert receipt is not None, f"completed receipt {rid} lost"
            assert receipt.chat_id == chat_id and receipt.result.chat_id == chat_id
        everything = store.list(limit=-1)  # every row (the completed and any later) loads
        assert len(everything) in (len(done), len(done) + 1) and len(store) == len(everything)
        assert store.get(done[-1][0]) is not None
        store.put(dataclasses.replace(everything[0], receipt_id="after"))
        assert store.get("after") is not None
    finally:
        store.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_during_raw_receipt_writes(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "receipts.sqlite3"
    done = _run_and_kill(["raw", str(path)], 40 * seed, random.Random(seed))
    _check_store(path, done)


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_sigkill_during_verified_calls(emu: Emulator, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "receipts.sqlite3"
    trust = emu.write_trust_file(tmp_path / "trust.json")
    done = _run_and_kill(["chat", str(path), str(trust), MODEL, kind], 15, random.Random(kind))
    _check_store(path, done)
    with ReceiptStore(path) as store:
        assert {store.get(rid).result.status.value for rid, _ in done} == {  # type: ignore[union-attr]
            "verified"
        }
