"""V13: receipts hold exact request/response bytes, so the SQLite store is private: its directory
is created 0700, the database and its WAL/SHM files 0600, whatever the umask; opening the default
store repairs the modes of an existing one."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpill_integrations import ReceiptStore
from tests.integration.stores._receipts import receipt


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_store_is_private(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "fresh" / "receipts.sqlite3"
    with ReceiptStore(path) as store:
        store.put(receipt(1))
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert (mode(path.parent), mode(path), mode(wal), mode(shm)) == (0o700, 0o600, 0o600, 0o600)


def test_opening_the_default_store_repairs_loose_modes(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REDPILL_RECEIPTS", raising=False)
    home = tmp_path / ".redpill"
    home.mkdir(mode=0o755)
    path = home / "receipts.sqlite3"
    old = sqlite3.connect(path)  # as an older version left it: 0755 / 0644, WAL files open
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")
    old.commit()
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.chmod(0o644)
    try:
        with ReceiptStore.default() as store:
            store.put(receipt(1))
            modes = [mode(p) for p in (home, path, Path(f"{path}-wal"), Path(f"{path}-shm"))]
            assert modes == [0o700, 0o600, 0o600, 0o600]
    finally:
        old.close()


def test_a_user_chosen_existing_directory_is_left_alone(tmp_path: Path, loose_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    with ReceiptStore(shared / "r.sqlite3") as store:
        store.put(receipt(1))
    assert mode(shared) == 0o755  # not ours to narrow; the files we create are still private
    assert mode(shared / "r.sqlite3") == 0o600
