"""The embedded SQLite receipt store (the default).

SQLite in WAL mode with ``synchronous=FULL``: each :meth:`SQLiteReceiptStore.put` commits its
receipt row plus its evidence, or nothing (concurrent puts share one ``BEGIN IMMEDIATE``
transaction, each in its own savepoint: ``stores/batching.py``), so a crash mid-write leaves the
whole receipt or nothing, and several processes may write one file. It is thread-safe
(one connection behind a lock). Receipts hold the exact bytes of requests and responses, so the
store is private: a directory it creates is ``0700``, the database and its ``-wal``/``-shm`` files
``0600``; opening the default store (``~/.redpill/receipts.sqlite3``) also repairs the modes of
an existing one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from redpill_integrations.errors import ReceiptError
from redpill_integrations.receipts import Receipt
from redpill_integrations.stores.base import (
    SCHEMA_VERSION,
    Filters,
    ReceiptStore,
    Row,
    body_columns,
    default_path,
    load,
)
from redpill_integrations.stores.batching import GroupCommit

__all__ = ["SQLiteReceiptStore"]

#: the first schema (version 1, as shipped before versioning); migrations start from it
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS evidence (
    sha256 TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    receipt_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    chat_id TEXT,
    model TEXT,
    evidence_sha256 TEXT REFERENCES evidence(sha256),
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_created ON receipts(created_at);
CREATE INDEX IF NOT EXISTS receipts_chat ON receipts(chat_id);
"""

_V2 = (
    "ALTER TABLE receipts ADD COLUMN protocol TEXT NOT NULL DEFAULT 'legacy'",
    "ALTER TABLE receipts ADD COLUMN provider TEXT",
    "CREATE INDEX IF NOT EXISTS receipts_status ON receipts(status, created_at)",
    "CREATE INDEX IF NOT EXISTS receipts_model ON receipts(model, created_at)",
    "CREATE INDEX IF NOT EXISTS receipts_protocol ON receipts(protocol, created_at)",
    "CREATE INDEX IF NOT EXISTS receipts_provider ON receipts(provider, created_at)",
)

_BATCH = 500
_SELECT = (
    "SELECT r.body, e.body, r.created_at, r.rowid, r.receipt_id FROM receipts r "
    "LEFT JOIN evidence e ON e.sha256 = r.evidence_sha256"
)
_INSERT = (
    "INSERT INTO receipts(receipt_id, created_at, status, chat_id, model, protocol, provider,"
    " evidence_sha256, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(receipt_id) DO NOTHING"
)


def _params(row: Row) -> tuple[Any, ...]:
    return (
        row.receipt_id,
        row.created_at,
        row.status,
        row.chat_id,
        row.model,
        row.protocol,
        row.provider,
        row.evidence_sha256,
        row.body,
    )


def _private_file(path: Path) -> None:
    """Create ``path`` as ``0600`` if it does not exist (before SQLite opens it)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)


class SQLiteReceiptStore(ReceiptStore):
    """SQLite (WAL), one atomic, idempotent write per exchange; thread-safe; private files."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        memory = str(path) == ":memory:"
        try:
            if not memory:
                self._prepare_files()
            self._db = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            if not memory:
                self._private_sidecars()
        except (OSError, sqlite3.Error) as exc:
            raise ReceiptError(f"cannot open receipt store {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._group: GroupCommit[Row] = GroupCommit(self._write)

    def __repr__(self) -> str:
        return f"ReceiptStore({str(self.path)!r})"

    # -- files and schema -------------------------------------------------------------------

    def _is_default(self) -> bool:
        try:
            return self.path.expanduser().resolve() == default_path().resolve()
        except OSError:
            return False

    def _prepare_files(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            parent.chmod(0o700)  # exact, whatever the umask
        elif self._is_default():
            _chmod(parent, 0o700)
        _private_file(self.path)
        if self._is_default():
            _chmod(self.path, 0o600)

    def _private_sidecars(self) -> None:
        """WAL/SHM files inherit the database's mode in SQLite; make sure for older stores."""
        for suffix in ("-wal", "-shm", "-journal"):
            sidecar = self.path.with_name(self.path.name + suffix)
            if sidecar.exists() and (self._is_default() or sidecar.stat().st_uid == os.getuid()):
                _chmod(sidecar, 0o600)

    def _version(self) -> int:
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 1

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # one process migrates at a time
        try:
            for statement in SCHEMA_V1.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            version = self._version()
            if version > SCHEMA_VERSION:
                raise ReceiptError(
                    f"receipt store {self.path} has schema {version}; this version of "
                    f"redpill-integrations reads up to {SCHEMA_VERSION}"
                )
            if version < 2:
                for statement in _V2:
                    self._db.execute(statement)
                self._backfill()
                self._db.execute("INSERT INTO schema_version(version) VALUES (2)")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _backfill(self) -> None:
        """Fill the listing columns added in schema 2 from the stored bodies."""
        rows = self._db.execute(f"{_SELECT} ORDER BY r.rowid").fetchall()
        for body, _evidence, _created, rowid, _rid in rows:
            protocol, provider = body_columns(body)
            self._db.execute(
                "UPDATE receipts SET protocol = ?, provider = ? WHERE rowid = ?",
                (protocol, provider, rowid),
            )

    # -- the store contract -----------------------------------------------------------------

    def put(self, receipt: Receipt) -> bool:
        return self._group.submit(Row.of(receipt))

    def _write(self, rows: Sequence[Row]) -> list[bool]:
        """One ``BEGIN IMMEDIATE`` transaction for ``rows`` (see ``stores/batching.py``)."""
        inserted: list[bool] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for row in rows:
                        self._db.execute("SAVEPOINT receipt")
                        if row.evidence is not None:
                            self._db.execute(
                                "INSERT OR IGNORE INTO evidence(sha256, body) VALUES (?, ?)",
                                (row.evidence_sha256, row.evidence),
                            )
                        new = self._db.execute(_INSERT, _params(row)).rowcount == 1
                        if not new:  # a duplicate id changes nothing, not even evidence
                            self._db.execute("ROLLBACK TO receipt")
                        self._db.execute("RELEASE receipt")
                        inserted.append(new)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise ReceiptError(f"cannot store receipt: {exc}") from exc
        return inserted

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise ReceiptError(f"cannot read receipt store: {exc}") from exc

    def get(self, receipt_id: str) -> Receipt | None:
        rows = self._query(f"{_SELECT} WHERE r.receipt_id = ?", (receipt_id,))
        return load(rows[0][0], rows[0][1]) if rows else None

    @staticmethod
    def _where(filters: Filters, extra: str = "") -> tuple[str, tuple[Any, ...]]:
        items = filters.items()
        clauses = [f"r.{col} = ?" for col, _ in items] + ([extra] if extra else [])
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, tuple(val for _, val in items)

    def _list(self, filters: Filters, limit: int) -> list[Receipt]:
        where, args = self._where(filters)
        rows = self._query(
            f"{_SELECT} {where} ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?",
            (*args, int(limit)),
        )
        return [load(row[0], row[1]) for row in rows]

    def _rows(
        self, filters: Filters, *, newest_first: bool
    ) -> Iterator[tuple[str, str, str | None]]:
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        after: tuple[str, int] | None = None
        while True:
            keyset = f"(r.created_at, r.rowid) {op} (?, ?)" if after else ""
            where, args = self._where(filters, keyset)
            rows = self._query(
                f"{_SELECT} {where} ORDER BY r.created_at {order}, r.rowid {order} LIMIT ?",
                (*args, *(after or ()), _BATCH),
            )
            for body, ev, _c, _r, rid in rows:
                yield rid, body, ev
            if len(rows) < _BATCH:
                return
            after = (rows[-1][2], rows[-1][3])

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM receipts", ())[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
