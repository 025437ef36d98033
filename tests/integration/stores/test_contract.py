"""The receipt-store contract, run against both backends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.errors import ConfigurationError, ReceiptError
from redpill_integrations.receipts import Receipt
from redpill_integrations.receipts import ReceiptStore as FromReceipts
from redpill_integrations.results import Status
from redpill_integrations.stores import ReceiptStore, SQLiteReceiptStore
from redpill_integrations.verify.models import AttestationEvidence

from ._receipts import receipt
from ._sql import count


def test_put_get_list_export_round_trip(
    store: ReceiptStore, store_url: str, tmp_path: Path
) -> None:
    for i in range(5):
        assert store.put(receipt(i, Status.VERIFIED if i % 2 else Status.UNVERIFIABLE)) is True
    assert len(store) == 5
    assert store.get("r3") == receipt(3, Status.VERIFIED)
    assert store.get("nope") is None
    assert [r.receipt_id for r in store.list(limit=2)] == ["r4", "r3"]
    assert [r.receipt_id for r in store.list(limit=-1)] == ["r4", "r3", "r2", "r1", "r0"]
    assert {r.receipt_id for r in store.list(status="verified")} == {"r1", "r3"}
    out = io.StringIO()
    assert store.export(out, status="unverifiable") == 3
    lines = out.getvalue().splitlines()
    assert [json.loads(x)["receipt_id"] for x in lines] == ["r0", "r2", "r4"]  # oldest first
    assert store.export(tmp_path / "all.jsonl") == 5
    first = (tmp_path / "all.jsonl").read_text().splitlines()[0]
    assert Receipt.from_json(first) == receipt(0)
    assert count(store_url, "evidence") == 1  # the shared evidence is stored once


def test_duplicate_receipt_id_is_no_second_row_and_no_error(
    store: ReceiptStore, store_url: str
) -> None:
    assert store.put(receipt(1)) is True
    other = Receipt(
        receipt_id="r1",
        created_at=receipt(1).created_at,
        result=receipt(2).result,
        attestation=AttestationEvidence(report=b"new", nonce="11" * 32),
    )
    assert store.put(other) is False  # idempotent: nothing changed, nothing raised
    assert store.put(receipt(1)) is False
    assert len(store) == 1 and store.get("r1") == receipt(1)
    assert count(store_url, "evidence") == 1  # not even the duplicate's evidence was kept


def test_listing_is_filtered_by_status_model_protocol_and_provider(store: ReceiptStore) -> None:
    store.put(receipt(0))
    store.put(receipt(1, Status.VERIFIED, model="phala/a", protocol="aci", provider="near"))
    store.put(receipt(2, Status.VERIFIED, model="phala/b", protocol="aci", provider="chutes"))
    store.put(receipt(3, model="phala/a", protocol="aci", provider="near"))

    def ids(**kw: Any) -> list[str]:
        return [r.receipt_id for r in store.list(limit=-1, **kw)]

    assert ids(protocol="legacy") == ["r0"]  # a verdict naming no protocol lists as legacy
    assert ids(protocol="aci") == ["r3", "r2", "r1"]
    assert ids(provider="near") == ["r3", "r1"]
    assert ids(model="phala/a", status="verified") == ["r1"]
    assert ids(provider="near", status="unverifiable") == ["r3"]
    assert ids(model="phala/none") == []
    assert [r.receipt_id for r in store.iter_all(provider="chutes")] == ["r2"]
    assert [r.receipt_id for r in store.iter_all(newest_first=True)] == ["r3", "r2", "r1", "r0"]


def test_export_streams_in_bounded_batches(
    store: ReceiptStore, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    module = "sqlite" if backend == "sqlite" else "postgres"
    monkeypatch.setattr(f"redpill_integrations.stores.{module}._BATCH", 3)
    for i in range(10):
        store.put(receipt(i, evidence=None))
    fetched: list[int] = []
    real = store._query  # type: ignore[attr-defined]

    def spy(sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        rows = real(sql, args)
        fetched.append(len(rows))
        return rows

    monkeypatch.setattr(store, "_query", spy)
    out = io.StringIO()
    assert store.export(out) == 10
    assert [json.loads(x)["receipt_id"] for x in out.getvalue().splitlines()] == [
        f"r{i}" for i in range(10)
    ]
    assert fetched == [3, 3, 3, 1]  # never more than one batch in memory


def test_threads_writing_at_once_all_land(store: ReceiptStore) -> None:
    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(lambda i: store.put(receipt(i)), range(64)))
    assert len(store) == 64 and len(store.list(limit=500)) == 64


def test_concurrent_duplicates_store_each_id_once(store: ReceiptStore, store_url: str) -> None:
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: store.put(receipt(i % 32)), range(96)))
    assert results.count(True) == 32 and results.count(False) == 64
    assert len(store) == 32 and count(store_url, "evidence") == 1


async def test_aput_from_many_tasks_all_land(store: ReceiptStore) -> None:
    done = await asyncio.gather(*(store.aput(receipt(i)) for i in range(50)))
    assert done == [True] * 50
    assert await store.aput(receipt(7)) is False
    assert len(store) == 50
    await store.aclose()


def test_corrupt_row_is_a_receipt_error(store: ReceiptStore, store_url: str) -> None:
    from ._sql import execute

    store.put(receipt(1))
    execute(store_url, "UPDATE {receipts} SET body = 'not json' WHERE receipt_id = 'r1'")
    with pytest.raises(ReceiptError, match=r"^stored receipt is corrupt$"):
        store.get("r1")


def test_open_chooses_the_backend_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ReceiptStore.open(f"sqlite://{tmp_path}/a.sqlite3") as a:
        assert isinstance(a, SQLiteReceiptStore) and a.path == tmp_path / "a.sqlite3"
    with ReceiptStore(tmp_path / "b.sqlite3") as b:  # the historical spelling still works
        assert isinstance(b, SQLiteReceiptStore) and isinstance(b, FromReceipts)
    monkeypatch.setenv("REDPILL_RECEIPTS", f"sqlite://{tmp_path}/env.sqlite3")
    with ReceiptStore.default() as c:
        assert isinstance(c, SQLiteReceiptStore) and c.path == tmp_path / "env.sqlite3"
    monkeypatch.setenv("REDPILL_RECEIPTS", str(tmp_path / "plain.sqlite3"))
    with ReceiptStore.default() as d:
        assert isinstance(d, SQLiteReceiptStore) and d.path == tmp_path / "plain.sqlite3"
    with pytest.raises(ConfigurationError, match="unknown receipt store scheme 'mysql'"):
        ReceiptStore.open("mysql://u:hunter2@h/db")
    with pytest.raises(ConfigurationError, match="sqlite:///absolute/path"):
        ReceiptStore.open("sqlite://relative.db")
    try:
        ReceiptStore.open("mysql://u:hunter2@h/db")
    except ConfigurationError as exc:
        assert "hunter2" not in str(exc) and "u:***@h" in str(exc)


def test_progress_bar_draws_only_on_a_terminal() -> None:
    from redpill_integrations.stores.audit import ProgressBar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for out in (tty, pipe):
        bar = ProgressBar(out, width=4)
        for done in range(1, 5):
            bar(done, 4)
    assert tty.getvalue() == "\r[#...] 1/4\r[##..] 2/4\r[###.] 3/4\r[####] 4/4\n"
    assert pipe.getvalue() == ""
