"""The reads the SQL backends share, written once over a small dialect.

:class:`SqlReceiptStore` implements :meth:`get`, :meth:`_list`, :meth:`_rows` and ``__len__`` of
:class:`~redpill_integrations.stores.base.ReceiptStore` from the backend's ``_query`` and its
dialect: the parameter placeholder, the ``SELECT`` that joins receipts to their evidence (columns
``body, evidence, created_at, <order column>, receipt_id``), the insertion-order column that breaks
``created_at`` ties, and the ``LIMIT`` value that means "all". Rows are read in keyset-paginated
batches, so a large table is never loaded into memory.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any, ClassVar

from redpill_integrations.receipts import Receipt
from redpill_integrations.stores.base import Filters, ReceiptStore, load


class SqlReceiptStore(ReceiptStore):
    """A receipt store over SQL; subclasses set the dialect and implement ``_query``."""

    _PH: ClassVar[str]  # the parameter placeholder: "?" or "%s"
    _SELECT: ClassVar[str]  # receipts LEFT JOIN evidence, aliased r and e
    _ORDER: ClassVar[str]  # the insertion-order column of r, e.g. "r.rowid"
    _TABLE: ClassVar[str]  # the receipts table, for COUNT(*)
    _ALL: ClassVar[int | None]  # the LIMIT argument that means no limit
    _BATCH: ClassVar[int] = 500  # rows per read batch

    def _query(self, sql: str, args: tuple[Any, ...]) -> builtins.list[tuple[Any, ...]]:
        raise NotImplementedError

    def get(self, receipt_id: str) -> Receipt | None:
        rows = self._query(f"{self._SELECT} WHERE r.receipt_id = {self._PH}", (receipt_id,))
        return load(rows[0][0], rows[0][1]) if rows else None

    def _where(self, filters: Filters, extra: str = "") -> tuple[str, tuple[Any, ...]]:
        items = filters.items()
        clauses = [f"r.{col} = {self._PH}" for col, _ in items] + ([extra] if extra else [])
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, tuple(val for _, val in items)

    def _list(self, filters: Filters, limit: int) -> builtins.list[Receipt]:
        where, args = self._where(filters)
        rows = self._query(
            f"{self._SELECT} {where} ORDER BY r.created_at DESC, {self._ORDER} DESC "
            f"LIMIT {self._PH}",
            (*args, int(limit) if limit >= 0 else self._ALL),
        )
        return [load(row[0], row[1]) for row in rows]

    def _rows(
        self, filters: Filters, *, newest_first: bool
    ) -> Iterator[tuple[str, str, str | None]]:
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        ph = self._PH
        after: tuple[Any, int] | None = None
        while True:
            keyset = f"(r.created_at, {self._ORDER}) {op} ({ph}, {ph})" if after else ""
            where, args = self._where(filters, keyset)
            rows = self._query(
                f"{self._SELECT} {where} ORDER BY r.created_at {order}, {self._ORDER} {order} "
                f"LIMIT {ph}",
                (*args, *(after or ()), self._BATCH),
            )
            for body, ev, _created, _order, rid in rows:
                yield rid, body, ev
            if len(rows) < self._BATCH:
                return
            after = (rows[-1][2], rows[-1][3])

    def __len__(self) -> int:
        count = f"SELECT COUNT(*) FROM {self._TABLE}"  # noqa: S608 (a class constant)
        return int(self._query(count, ())[0][0])
