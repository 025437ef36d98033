"""Generation-B receipts: building, signing (Ed25519 over the canonical form without
``signature``), and the in-memory store with TTL and owner check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from redpill_integrations.emulator.aci.jcs import canonical
from redpill_integrations.emulator.aci.kms import RECEIPT_KEY_ID, AciKeys
from redpill_integrations.emulator.faults import Faults

__all__ = [
    "FOREIGN_KEY_ID",
    "ReceiptStore",
    "StoredReceipt",
    "new_receipt_id",
    "owner_of",
    "sha256_tag",
    "sign_receipt",
]

#: the key id a receipt signed by a key outside the keyset names
FOREIGN_KEY_ID = "dstack-kms-receipt-ed25519-foreign"


def new_receipt_id() -> str:
    return "rcpt-" + secrets.token_hex(12)


def sha256_tag(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def owner_of(authorization: str | None) -> str | None:
    """``sha256:<hex>`` of the bearer token, or None without one."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    return sha256_tag(token.encode()) if token else None


def _other(tag: str) -> str:
    return sha256_tag(b"not these bytes " + tag.encode())


def sign_receipt(doc: dict[str, Any], keys: AciKeys, faults: Faults) -> dict[str, Any]:
    """``doc`` (without ``key_id``/``signature``) signed, after applying the receipt faults."""
    out = dict(doc)
    events = [dict(e) for e in out["event_log"]]
    target = {"request": "request.received", "response": "response.returned"}.get(
        faults.receipt_body_hash or ""
    )
    for e in events:
        if e["type"] == target:
            e["body_hash"] = _other(e["body_hash"])
    out["event_log"] = events
    if faults.receipt_mismatch == "chat_id":
        out["chat_id"] = "chatcmpl-another-exchange"
    elif faults.receipt_mismatch == "endpoint":
        out["endpoint"] = "/v1/completions"
    elif faults.receipt_mismatch == "model":
        out["model"] = "emulator/another-model"
    elif faults.receipt_mismatch == "receipt_id":
        out["receipt_id"] = new_receipt_id()
    if faults.stale_served_at:
        out["served_at"] = int(out["served_at"]) - 3600
    foreign = faults.receipt_foreign_key
    out["key_id"] = FOREIGN_KEY_ID if foreign else RECEIPT_KEY_ID
    signer = keys.foreign if foreign else keys.receipt
    signature = bytearray(signer.sign(canonical(out)))
    if faults.receipt_bad_signature:
        signature[0] ^= 0x01
    out["signature"] = bytes(signature).hex()
    return out


@dataclasses.dataclass(frozen=True)
class StoredReceipt:
    receipt_id: str
    chat_id: str | None
    owner: str | None
    doc: dict[str, Any]
    stored_at: float
    ttl: float
    ready_after: float
    #: faults the inference request carried in its header (they also govern its lookups)
    faults: Faults | None

    @property
    def body(self) -> bytes:
        return canonical(self.doc)


class ReceiptStore:
    """receipt id → receipt (chat ids resolve to the newest receipt); thread-safe, bounded."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._by_id: dict[str, StoredReceipt] = {}
        self._by_chat: dict[str, str] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def now(self) -> float:
        return self._clock()

    def put(self, receipt: StoredReceipt) -> None:
        with self._lock:
            if len(self._by_id) >= self._max:
                self._drop(self._by_id[next(iter(self._by_id))])
            self._by_id[receipt.receipt_id] = receipt
            if receipt.chat_id:
                self._by_chat[receipt.chat_id] = receipt.receipt_id

    def get(self, key: str, *, chat_first: bool = False) -> StoredReceipt | None:
        """By receipt id then chat id (``chat_first``: the other way round); None if unknown or
        expired (dropped). Readiness (``ready_after``) is the caller's to check."""
        with self._lock:
            ids = [self._by_chat.get(key), key] if chat_first else [key, self._by_chat.get(key)]
            for rid in ids:
                rec = self._by_id.get(rid) if rid else None
                if rec is None:
                    continue
                now = self._clock()
                if now - rec.stored_at >= rec.ttl:
                    self._drop(rec)
                    return None
                return rec
            return None

    def _drop(self, rec: StoredReceipt) -> None:
        del self._by_id[rec.receipt_id]
        if rec.chat_id and self._by_chat.get(rec.chat_id) == rec.receipt_id:
            del self._by_chat[rec.chat_id]

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._by_chat.clear()
