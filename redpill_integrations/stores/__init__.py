"""Receipt stores: one interface (:class:`ReceiptStore`), two backends chosen by URL.

``ReceiptStore.open("sqlite:///path")`` (the embedded default) or
``ReceiptStore.open("postgresql://user@host/db")`` (many workers, one store; needs the
``[postgres]`` extra). ``ReceiptStore(path)`` opens SQLite. See ``docs/receipt-stores.md``.
"""

from __future__ import annotations

from redpill_integrations.stores.base import ReceiptStore, redact_url
from redpill_integrations.stores.sqlite import SQLiteReceiptStore

__all__ = ["ReceiptStore", "SQLiteReceiptStore", "redact_url"]
