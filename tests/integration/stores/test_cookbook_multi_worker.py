"""cookbook/multi_worker.py: worker processes, one PostgreSQL store, one trace per call."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.stores import ReceiptStore
from tests.support_postgres import Cluster

ROOT = Path(__file__).resolve().parents[3]


def test_multi_worker_cookbook(
    pg_cluster: Cluster,
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = pg_cluster.create_database()
    emu.write_trust_file(tmp_path / "trust.json")
    for name, value in {
        "REDPILL_BASE_URL": emu.base_url,
        "REDPILL_API_KEY": emu.api_key,
        "REDPILL_TRUST_FILE": str(tmp_path / "trust.json"),
        "REDPILL_RECEIPTS": url,
        "PYTHONPATH": str(ROOT),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    main = runpy.run_path(str(ROOT / "cookbook" / "multi_worker.py"), run_name="cookbook")["main"]
    assert main(2, 3) is True
    out = capsys.readouterr().out
    assert "2 workers, 6 calls, 6 traces, 6 verified" in out
    assert "6/6 receipts in the shared store (6 in all)" in out
    with ReceiptStore.open(url) as store:
        assert len(store) == 6
