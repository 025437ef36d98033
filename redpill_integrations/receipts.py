"""Self-contained receipts that re-verify offline, and the SQLite ``ReceiptStore``."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from redpill_integrations.results import VerificationResult


@dataclasses.dataclass(frozen=True)
class Receipt:
    receipt_id: str
    created_at: datetime
    result: VerificationResult


class ReceiptStore:
    """SQLite (WAL), one atomic write per exchange."""


def reverify(receipt: Receipt, *, at: datetime | None = None) -> VerificationResult:
    raise NotImplementedError
