"""Per-response signing keys (secp256k1 EIP-191 personal_sign and ed25519) and the store.

Signing uses coincurve and keccak directly (eth_account takes a second to import); the tests
recover the signatures with eth_account.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable

from coincurve import PrivateKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_hash.auto import keccak as _eth_keccak

from redpill_integrations.emulator.faults import Faults

__all__ = ["ChatRecord", "SignatureStore", "SigningKeys"]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _keccak(data: bytes) -> bytes:
    return bytes(_eth_keccak(data))


def _checksum(address_hex: str) -> str:
    """EIP-55 mixed-case address."""
    h = _keccak(address_hex.encode()).hex()
    return "0x" + "".join(c.upper() if int(h[i], 16) >= 8 else c for i, c in enumerate(address_hex))


class SigningKeys:
    """One node's signing identity: an ecdsa (secp256k1) key and an ed25519 key."""

    def __init__(self, seed: bytes, label: str) -> None:
        scalar = int.from_bytes(hashlib.sha256(seed + b"|k1|" + label.encode()).digest(), "big")
        self._k1 = PrivateKey(((scalar % (_SECP256K1_N - 1)) + 1).to_bytes(32, "big"))
        pub = self._k1.public_key.format(compressed=False)[1:]
        self._address = _checksum(_keccak(pub)[-20:].hex())
        self._ed = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(seed + b"|ed|" + label.encode()).digest()
        )
        self.ed25519_public = self._ed.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def address(self, algo: str) -> str:
        """ecdsa: checksummed 0x address; ed25519: public key hex (docs/protocol-legacy.md §2)."""
        return self._address if algo == "ecdsa" else self.ed25519_public.hex()

    def address_bytes(self, algo: str) -> bytes:
        return bytes.fromhex(self.address(algo).removeprefix("0x"))

    def sign(self, algo: str, text: str) -> str:
        if algo == "ecdsa":
            data = text.encode()
            digest = _keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
            sig = self._k1.sign_recoverable(digest, hasher=None)  # r ‖ s ‖ recid
            return "0x" + (sig[:64] + bytes([sig[64] + 27])).hex()
        return self._ed.sign(text.encode()).hex()


@dataclasses.dataclass
class ChatRecord:
    """What the node remembers about one finished chat until the TTL expires."""

    chat_id: str
    model: str
    served_model: str
    request_sha256: str
    response_sha256: str
    finished_at: float
    ttl: float
    ready_after: float = 0.0
    foreign_signer: bool = False
    sign_other_request: bool = False
    #: faults the chat request carried in its header (they also govern its lookups)
    faults: Faults | None = None

    def text(self, parts: int) -> str:
        req = self.request_sha256
        if self.sign_other_request:
            req = hashlib.sha256(b"another request " + req.encode()).hexdigest()
        base = f"{req}:{self.response_sha256}"
        return f"{self.served_model}:{base}" if parts == 3 else base


class SignatureStore:
    """chat id → :class:`ChatRecord`, with expiry; thread-safe, bounded."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._records: dict[str, ChatRecord] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def now(self) -> float:
        return self._clock()

    def put(self, record: ChatRecord) -> None:
        with self._lock:
            if len(self._records) >= self._max:
                self._records.pop(next(iter(self._records)))
            self._records[record.chat_id] = record

    def get(self, chat_id: str) -> ChatRecord | None:
        """The record, or None if unknown or expired (expired entries are dropped)."""
        with self._lock:
            rec = self._records.get(chat_id)
            if rec is None:
                return None
            if self._clock() - rec.finished_at >= rec.ttl:
                del self._records[chat_id]
                return None
            return rec

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
