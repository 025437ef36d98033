"""A test dstack KMS: its secp256k1 root, one app key, and the custody chains of the ACI keys.

Everything is derived from the emulator seed (cheap: a few coincurve operations). The chain of one
key (see ``docs/aci-emulator.md``, "Key custody"):

- ``sig1`` = the KMS root's recoverable signature over
  ``keccak256(b"dstack-kms-issued:" + app_id(20) + app_pub_compressed(33))``;
- ``sig0`` = the app key's recoverable signature over
  ``keccak256(f"{purpose}:{kms_public_key_compressed_hex}")``;

both 65 bytes ``r‖s‖v`` with ``v`` in {0, 1}. For the Ed25519 and X25519 roles ``kms_public_key``
is the secp256k1 public key of the same 32-byte secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from coincurve import PrivateKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_hash.auto import keccak as _eth_keccak

__all__ = [
    "E2EE_K1_ALGO",
    "E2EE_K1_KEY_ID",
    "E2EE_X25519_ALGO",
    "E2EE_X25519_KEY_ID",
    "RECEIPT_KEY_ID",
    "AciKeys",
    "TestKms",
    "k1_key",
    "keccak",
]

RECEIPT_KEY_ID = "dstack-kms-receipt-ed25519-v1"
E2EE_K1_KEY_ID = "dstack-kms-e2ee-v1"
E2EE_K1_ALGO = "secp256k1-aes-256-gcm-hkdf-sha256"
E2EE_X25519_KEY_ID = "dstack-kms-e2ee-x25519-v1"
E2EE_X25519_ALGO = "x25519-aes-256-gcm-hkdf-sha256"
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keccak(data: bytes) -> bytes:
    return bytes(_eth_keccak(data))


def _secret(seed: bytes, label: str) -> bytes:
    """32 bytes that are also a valid secp256k1 scalar."""
    raw = hashlib.sha256(seed + b"|aci-kms|" + label.encode()).digest()
    return ((int.from_bytes(raw, "big") % (_N - 1)) + 1).to_bytes(32, "big")


def k1_key(seed: bytes, label: str) -> PrivateKey:
    return PrivateKey(_secret(seed, label))


def _sign(key: PrivateKey, digest: bytes) -> str:
    return key.sign_recoverable(digest, hasher=None).hex()  # r ‖ s ‖ recid (0/1)


@dataclasses.dataclass(frozen=True)
class TestKms:
    """The KMS root and the app key it issued to the emulated gateway's app id."""

    root: PrivateKey
    app_key: PrivateKey
    app_id: bytes
    #: a root nobody trusts (the ``custody_unknown_root`` fault)
    rogue_root: PrivateKey

    @classmethod
    def create(cls, seed: bytes) -> TestKms:
        return cls(
            root=k1_key(seed, "kms-root"),
            app_key=k1_key(seed, "kms-app-key"),
            app_id=hashlib.sha256(seed + b"|aci-app-id").digest()[:20],
            rogue_root=k1_key(seed, "rogue-kms-root"),
        )

    @property
    def root_pubkey_hex(self) -> str:
        return self.root.public_key.format(compressed=True).hex()

    def chain(self, purpose: str, kms_public_key: bytes, *, rogue: bool = False) -> list[str]:
        app_pub = self.app_key.public_key.format(compressed=True)
        sig0 = _sign(self.app_key, keccak(f"{purpose}:{kms_public_key.hex()}".encode()))
        root = self.rogue_root if rogue else self.root
        sig1 = _sign(root, keccak(b"dstack-kms-issued:" + self.app_id + app_pub))
        return [sig0, sig1]


class AciKeys:
    """One keyset epoch's secrets: the receipt (Ed25519) and E2EE (secp256k1, X25519) keys."""

    def __init__(self, seed: bytes, epoch: int) -> None:
        self.receipt_secret = _secret(seed, f"receipt/{epoch}")
        self.receipt = Ed25519PrivateKey.from_private_bytes(self.receipt_secret)
        self.receipt_public = self.receipt.public_key().public_bytes(*_RAW)
        self.e2ee_k1 = PrivateKey(_secret(seed, f"e2ee-k1/{epoch}"))
        self.x25519_secret = _secret(seed, f"e2ee-x25519/{epoch}")
        self.x25519_public = (
            X25519PrivateKey.from_private_bytes(self.x25519_secret).public_key().public_bytes(*_RAW)
        )
        #: an Ed25519 key outside every keyset (the ``receipt_foreign_key`` fault)
        self.foreign = Ed25519PrivateKey.from_private_bytes(_secret(seed, f"foreign/{epoch}"))

    def sign_eip191(self, text: str) -> str:
        """EIP-191 ``personal_sign`` with the secp256k1 E2EE key: ``0x`` r‖s‖v, v in 27/28."""
        data = text.encode()
        digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
        sig = self.e2ee_k1.sign_recoverable(digest, hasher=None)
        return "0x" + (sig[:64] + bytes([sig[64] + 27])).hex()

    @property
    def e2ee_address(self) -> str:
        """``0x`` + lowercase hex of the secp256k1 E2EE key's Ethereum address."""
        return "0x" + keccak(self.e2ee_k1.public_key.format(compressed=False)[1:])[-20:].hex()

    def keyset_entries(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        receipt = [
            {"key_id": RECEIPT_KEY_ID, "algo": "ed25519", "public_key": self.receipt_public.hex()}
        ]
        e2ee = [
            {
                "key_id": E2EE_K1_KEY_ID,
                "algo": E2EE_K1_ALGO,
                "public_key": self.e2ee_k1.public_key.format(compressed=False).hex(),
            },
            {
                "key_id": E2EE_X25519_KEY_ID,
                "algo": E2EE_X25519_ALGO,
                "public_key": self.x25519_public.hex(),
            },
        ]
        return receipt, e2ee

    def custody(self, kms: TestKms, *, rogue: bool = False) -> dict[str, Any]:
        """``evidence.key_custody``: one entry per role, each chained to the KMS root."""
        k1_pub = self.e2ee_k1.public_key
        rows = [
            (
                "receipt",
                "aci/receipt-ed25519/v1",
                "aci.receipt.ed25519.v1",
                "ed25519",
                self.receipt_public.hex(),
                PrivateKey(self.receipt_secret).public_key.format(compressed=True),
            ),
            (
                "e2ee-secp256k1",
                "aci/e2ee/v1",
                "aci.e2ee.v1",
                E2EE_K1_ALGO,
                k1_pub.format(compressed=False).hex(),
                k1_pub.format(compressed=True),
            ),
            (
                "e2ee-x25519",
                "aci/e2ee-x25519/v1",
                "aci.e2ee.x25519.v1",
                E2EE_X25519_ALGO,
                self.x25519_public.hex(),
                PrivateKey(self.x25519_secret).public_key.format(compressed=True),
            ),
        ]
        keys = [
            {
                "role": role,
                "path": path,
                "purpose": purpose,
                "algo": algo,
                "public_key": public,
                "kms_public_key": kms_pub.hex(),
                "signature_chain": kms.chain(purpose, kms_pub, rogue=rogue),
            }
            for role, path, purpose, algo, public, kms_pub in rows
        ]
        return {"provider": "dstack-kms", "keys": keys}
