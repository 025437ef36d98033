"""The PostgreSQL receipt store: many workers, one store (the ``[postgres]`` extra, psycopg 3).

Connections come from psycopg's pools: a :class:`psycopg_pool.ConnectionPool` for sync code and,
for :meth:`PostgresReceiptStore.aput`, an :class:`psycopg_pool.AsyncConnectionPool` per event loop
(created on first use), so async callers never block their loop. Each put commits its evidence
row (de-duplicated by content hash) and its receipt row, or nothing; a receipt id already stored
is left alone and ``put`` returns ``False``. Concurrent sync puts share one transaction of two
statements (group commit, ``stores/batching.py``). A write that fails because the server is
unreachable is retried a bounded number of times (``attempts``), then raises ``ReceiptError``.

The schema (tables ``redpill_receipts``, ``redpill_evidence``, ``redpill_schema_version``) is
created and migrated when the store opens, under a transaction-scoped advisory lock so that many
processes may open one database at once. The URL's password is never shown: :func:`redact_url`
is the only form in reprs, errors and logs. See ``docs/receipt-stores.md``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from redpill_integrations.errors import ConfigurationError, ReceiptError
from redpill_integrations.receipts import Receipt
from redpill_integrations.stores.base import (
    SCHEMA_VERSION,
    Row,
    body_columns,
    redact_url,
    url_password,
)
from redpill_integrations.stores.batching import MAX_BATCH, GroupCommit
from redpill_integrations.stores.sql import SqlReceiptStore

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

__all__ = ["PostgresReceiptStore"]

logger = logging.getLogger(__name__)

#: pg_advisory_xact_lock key that serialises schema migrations ("redpill" in ASCII, truncated)
_MIGRATION_LOCK = 0x72656470696C6C

#: the first schema (version 1); migrations start from it
SCHEMA_V1 = (
    "CREATE TABLE IF NOT EXISTS redpill_evidence ( sha256 TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS redpill_receipts ("
    " seq BIGSERIAL NOT NULL UNIQUE,"
    " receipt_id TEXT PRIMARY KEY,"
    " created_at TIMESTAMPTZ NOT NULL,"
    " status TEXT NOT NULL,"
    " chat_id TEXT,"
    " model TEXT,"
    " evidence_sha256 TEXT REFERENCES redpill_evidence(sha256),"
    " body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS redpill_receipts_created ON redpill_receipts(created_at, seq)",
    "CREATE INDEX IF NOT EXISTS redpill_receipts_chat ON redpill_receipts(chat_id)",
    "CREATE TABLE IF NOT EXISTS redpill_schema_version (version INTEGER NOT NULL)",
)

_V2 = (
    "ALTER TABLE redpill_receipts ADD COLUMN IF NOT EXISTS protocol TEXT NOT NULL DEFAULT 'legacy'",
    "ALTER TABLE redpill_receipts ADD COLUMN IF NOT EXISTS provider TEXT",
    "CREATE INDEX IF NOT EXISTS redpill_receipts_status ON redpill_receipts(status, created_at)",
    "CREATE INDEX IF NOT EXISTS redpill_receipts_model ON redpill_receipts(model, created_at)",
    "CREATE INDEX IF NOT EXISTS redpill_receipts_protocol"
    " ON redpill_receipts(protocol, created_at)",
    "CREATE INDEX IF NOT EXISTS redpill_receipts_provider"
    " ON redpill_receipts(provider, created_at)",
)

_BATCH = 500  # rows per backfill batch
_SELECT = (
    "SELECT r.body, e.body, r.created_at, r.seq, r.receipt_id FROM redpill_receipts r "
    "LEFT JOIN redpill_evidence e ON e.sha256 = r.evidence_sha256"
)
# A batch (group commit) in two statements: evidence only for receipts not already stored (so a
# duplicate id leaves nothing behind), then all receipt rows.
_INSERT_EVIDENCE_BATCH = (
    "INSERT INTO redpill_evidence(sha256, body)"
    " SELECT t.sha256, t.body FROM unnest(%s::text[], %s::text[], %s::text[])"
    " AS t(receipt_id, sha256, body)"
    " WHERE NOT EXISTS (SELECT 1 FROM redpill_receipts r WHERE r.receipt_id = t.receipt_id)"
    " ON CONFLICT (sha256) DO NOTHING"
)
_INSERT_BATCH = (
    "INSERT INTO redpill_receipts(receipt_id, created_at, status, chat_id, model, protocol,"
    " provider, evidence_sha256, body)"
    " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (receipt_id) DO NOTHING RETURNING receipt_id"
)


def _import_psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError(
            "a postgresql:// receipt store needs the 'postgres' extra: "
            "pip install 'redpill-integrations[postgres]'"
        ) from exc
    return psycopg, psycopg_pool


def _batch_args(
    items: Sequence[tuple[Row, Receipt]],
    params: Callable[[Row, Receipt], tuple[Any, ...]],
) -> tuple[tuple[list[Any], ...], list[list[Any]]]:
    """The array parameters of ``_INSERT_EVIDENCE_BATCH`` and ``_INSERT_BATCH``."""
    with_evidence = [row for row, _ in items if row.evidence is not None]
    evidence = (
        [r.receipt_id for r in with_evidence],
        [r.evidence_sha256 for r in with_evidence],
        [r.evidence for r in with_evidence],
    )
    columns = [params(row, receipt) for row, receipt in items]
    return evidence, [list(col) for col in zip(*columns, strict=True)]


def _inserted(ids: list[str], stored: set[str]) -> list[bool]:
    """Per row, whether it was stored (of several rows with one id, the first one was)."""
    out = []
    for rid in ids:
        out.append(rid in stored)
        stored.discard(rid)
    return out


class PostgresReceiptStore(SqlReceiptStore):
    """Receipts in PostgreSQL through psycopg 3 connection pools.

    ``attempts`` bounds how often one write is tried when the server is unreachable (with
    ``backoff`` seconds, doubling, between tries); ``timeout`` bounds the wait for a pooled
    connection and for connecting at open. ``ConfigurationError`` at construction when the
    database cannot be reached.
    """

    _PH = "%s"
    _SELECT = _SELECT
    _ORDER = "r.seq"
    _TABLE = "redpill_receipts"
    _ALL = None  # LIMIT NULL is no limit in PostgreSQL

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        attempts: int = 3,
        backoff: float = 0.05,
        timeout: float = 5.0,
    ) -> None:
        psycopg, psycopg_pool = _import_psycopg()
        self._url = url
        self.url = redact_url(url)
        self._secret = url_password(url)
        self._attempts = max(1, int(attempts))
        self._backoff = backoff
        self._timeout = timeout
        self._sizes = (min_size, max_size)
        self._errors: tuple[type[BaseException], ...] = (
            psycopg.OperationalError,
            psycopg_pool.PoolTimeout,
            psycopg_pool.TooManyRequests,
        )
        self._psycopg = psycopg
        self._apools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncConnectionPool[Any]
        ] = weakref.WeakKeyDictionary()
        self._apool_lock = threading.Lock()
        self._group: GroupCommit[tuple[Row, Receipt]] = GroupCommit(self._write)
        self._aqueues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[Row, Receipt, asyncio.Future[bool]]]
        ] = weakref.WeakKeyDictionary()
        self._atasks: set[asyncio.Task[None]] = set()
        try:
            with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
                self._migrate(conn)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"cannot open receipt store {self.url}: {self._scrub(exc)}"
            ) from None
        self._pool: ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="redpill-receipts",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except self._errors as exc:
            self._pool.close()
            raise ConfigurationError(
                f"cannot open receipt store {self.url}: {self._scrub(exc)}"
            ) from None

    def __repr__(self) -> str:
        return f"PostgresReceiptStore({self.url!r})"

    def _scrub(self, exc: BaseException | str) -> str:
        text = str(exc).strip() or type(exc).__name__
        return text.replace(self._secret, "***") if self._secret else text

    def _fail(self, what: str, exc: BaseException) -> NoReturn:
        raise ReceiptError(f"{what} ({self.url}): {self._scrub(exc)}") from None

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            for statement in SCHEMA_V1:
                conn.execute(statement)
            row = conn.execute("SELECT MAX(version) FROM redpill_schema_version").fetchone()
            version = int(row[0]) if row and row[0] is not None else 1
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"receipt store {self.url} has schema {version}; this version of "
                    f"redpill-integrations reads up to {SCHEMA_VERSION}"
                )
            if version < 2:
                for statement in _V2:
                    conn.execute(statement)
                self._backfill(conn)
                conn.execute("INSERT INTO redpill_schema_version(version) VALUES (2)")

    @staticmethod
    def _backfill(conn: psycopg.Connection[Any]) -> None:
        """Fill the listing columns added in schema 2 from the stored bodies (batched)."""
        after = -1
        while True:
            rows = conn.execute(
                f"{_SELECT} WHERE r.seq > %s ORDER BY r.seq LIMIT %s", (after, _BATCH)
            ).fetchall()
            for body, _evidence, _created, seq, _rid in rows:
                protocol, provider = body_columns(body)
                conn.execute(
                    "UPDATE redpill_receipts SET protocol = %s, provider = %s WHERE seq = %s",
                    (protocol, provider, seq),
                )
            if len(rows) < _BATCH:
                return
            after = rows[-1][3]

    # -- writes -----------------------------------------------------------------------------

    @staticmethod
    def _params(row: Row, receipt: Receipt) -> tuple[Any, ...]:
        return (
            row.receipt_id,
            receipt.created_at,
            row.status,
            row.chat_id,
            row.model,
            row.protocol,
            row.provider,
            row.evidence_sha256,
            row.body,
        )

    def put(self, receipt: Receipt) -> bool:
        return self._group.submit((Row.of(receipt), receipt))

    def _write(self, items: Sequence[tuple[Row, Receipt]]) -> list[bool]:
        """One transaction of two statements for all ``items`` (``stores/batching.py``): the
        evidence of receipts not stored yet, then every receipt row (``ON CONFLICT DO
        NOTHING``); retried ``attempts`` times when the server is unreachable."""
        psycopg = self._psycopg
        evidence_args, receipt_args = _batch_args(items, self._params)
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                with self._pool.connection() as conn, conn.transaction():
                    if evidence_args[0]:
                        conn.execute(_INSERT_EVIDENCE_BATCH, evidence_args)
                    rows = conn.execute(_INSERT_BATCH, receipt_args).fetchall()
                return _inserted([row.receipt_id for row, _ in items], {rid for (rid,) in rows})
            except self._errors as exc:
                if attempt == self._attempts:
                    self._fail(f"cannot store receipt after {attempt} attempts", exc)
                logger.warning("receipt store %s: write failed (%s); retrying", self.url, exc)
                time.sleep(delay)
                delay *= 2
            except psycopg.Error as exc:
                self._fail("cannot store receipt", exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apool(self) -> AsyncConnectionPool[Any]:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            _, psycopg_pool = _import_psycopg()
            pool = psycopg_pool.AsyncConnectionPool(
                self._url,
                min_size=self._sizes[0],
                max_size=self._sizes[1],
                timeout=self._timeout,
                open=False,
                name="redpill-receipts-async",
            )
            with self._apool_lock:
                self._apools[loop] = pool
            await pool.open(wait=False)
        return pool

    async def aput(self, receipt: Receipt) -> bool:
        """:meth:`put` on the async pool of the running loop: no blocking call on the loop.
        Concurrent ``aput`` calls on one loop share a commit, like concurrent ``put`` calls.

        The pool belongs to that loop and stays open until :meth:`close`: one long-lived loop is
        the intended use. (The verifier itself writes through :meth:`put` in a worker thread, so
        repeated ``asyncio.run`` calls leave no pools behind.)"""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        queue = self._aqueues.setdefault(loop, [])
        queue.append((Row.of(receipt), receipt, future))
        if len(queue) == 1:  # nobody is flushing this loop's queue: start
            task = loop.create_task(self._aflush(queue))
            self._atasks.add(task)
            task.add_done_callback(self._atasks.discard)
        result = await future
        return result

    async def _aflush(self, queue: list[tuple[Row, Receipt, asyncio.Future[bool]]]) -> None:
        """Write the loop's pending receipts, batch after batch, until none is left."""
        while queue:
            await asyncio.sleep(0)  # let the writers of this instant join the batch
            batch = queue[:MAX_BATCH]
            try:
                inserted = await self._awrite([(row, receipt) for row, receipt, _ in batch])
            except BaseException as exc:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(
                            ReceiptError(str(exc)) if isinstance(exc, ReceiptError) else exc
                        )
                if not isinstance(exc, Exception):
                    del queue[: len(batch)]
                    raise
            else:
                for (*_, fut), new in zip(batch, inserted, strict=True):
                    if not fut.done():
                        fut.set_result(new)
            del queue[: len(batch)]

    async def _awrite(self, items: Sequence[tuple[Row, Receipt]]) -> list[bool]:
        """:meth:`_write` on the async pool."""
        psycopg = self._psycopg
        evidence_args, receipt_args = _batch_args(items, self._params)
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                pool = await self._apool()
                async with pool.connection() as conn, conn.transaction():
                    if evidence_args[0]:
                        await conn.execute(_INSERT_EVIDENCE_BATCH, evidence_args)
                    cur = await conn.execute(_INSERT_BATCH, receipt_args)
                    stored = {rid for (rid,) in await cur.fetchall()}
                return _inserted([row.receipt_id for row, _ in items], stored)
            except self._errors as exc:
                if attempt == self._attempts:
                    self._fail(f"cannot store receipt after {attempt} attempts", exc)
                logger.warning("receipt store %s: write failed (%s); retrying", self.url, exc)
                await asyncio.sleep(delay)
                delay *= 2
            except psycopg.Error as exc:
                self._fail("cannot store receipt", exc)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads ------------------------------------------------------------------------------

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return list(conn.execute(sql, args).fetchall())
        except (*self._errors, self._psycopg.Error) as exc:
            self._fail("cannot read receipt store", exc)

    def close(self) -> None:
        self._pool.close()
        with self._apool_lock:
            pools = list(self._apools.items())
            self._apools.clear()
        for loop, pool in pools:  # each async pool is closed on its own loop if it still runs
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.create_task(pool.close())
            elif not loop.is_running():
                loop.run_until_complete(pool.close())
            else:
                asyncio.run_coroutine_threadsafe(pool.close(), loop)

    async def aclose(self) -> None:
        """Close both pools from async code (the async pool of the running loop is awaited)."""
        loop = asyncio.get_running_loop()
        with self._apool_lock:
            pool = self._apools.pop(loop, None)
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(self.close)
