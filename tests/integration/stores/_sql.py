"""Raw SQL on a store's database, bypassing the store (to count rows, or tamper with them)."""

from __future__ import annotations

import sqlite3
from typing import Any

_TABLES = {
    "sqlite": {"receipts": "receipts", "evidence": "evidence", "version": "schema_version"},
    "postgres": {
        "receipts": "redpill_receipts",
        "evidence": "redpill_evidence",
        "version": "redpill_schema_version",
    },
}


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite://") else "postgres"


def execute(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``{receipts}``/``{evidence}``/``{version}`` name the backend's tables; ``?``
    placeholders) in its own committed transaction; returns the rows."""
    kind = _kind(url)
    sql = sql.format(**_TABLES[kind])
    if kind == "sqlite":
        db = sqlite3.connect(url[len("sqlite://") :], isolation_level=None)
        try:
            return list(db.execute(sql, args).fetchall())
        finally:
            db.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), args)  # type: ignore[arg-type]
        return list(cur.fetchall()) if cur.description else []


def count(url: str, table: str) -> int:
    return int(execute(url, f"SELECT COUNT(*) FROM {{{table}}}")[0][0])
