"""8 processes x 200 concurrent verified calls into one PostgreSQL store: every receipt is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from redpill_integrations.emulator import Emulator
from redpill_integrations.results import Status
from redpill_integrations.stores import ReceiptStore
from tests.support_postgres import Cluster

ROOT = Path(__file__).resolve().parents[3]
WORKERS = 8
CALLS = 200


def test_eight_processes_of_200_concurrent_calls_lose_no_receipt(
    pg_cluster: Cluster, emulator: Emulator, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    trust_file = emulator.write_trust_file(tmp_path / "trust.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.stores._worker",
                url,
                str(trust_file),
                str(CALLS),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    ids: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["errors"] == []
        assert report["statuses"] == [Status.VERIFIED.value] * CALLS, report["reasons"]
        assert None not in report["ids"]  # every verdict points at its stored receipt
        ids += report["ids"]
    assert len(set(ids)) == WORKERS * CALLS
    with ReceiptStore.open(url) as store:
        assert len(store) == WORKERS * CALLS
        stored = {r.receipt_id for r in store.iter_all()}
        assert stored == set(ids)
        assert all(store.get(i) is not None for i in ids[:: CALLS // 4])
