"""dstack KMS key custody chains of an ACI keyset (docs/protocol-aci.md, key custody).

Each custody entry carries two recoverable secp256k1 signatures (65 bytes ``r‖s‖v``)::

    app_pub  = recover(keccak256(f"{purpose}:{kms_public_key_hex}"), sig0)
    root_pub = recover(keccak256(b"dstack-kms-issued:" ‖ app_id(20) ‖ compressed(app_pub)), sig1)

Plain keccak256 of those bytes (not EIP-191). ``app_id`` must come from the measured ``app-id``
event. The chain proves the KMS (``root_pub``) released the key to that app; the root must be one
the trust anchors accept, and the receipt key of the keyset must be covered by a ``receipt`` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import coincurve
from eth_hash.auto import keccak

from redpill_integrations.verify.aci.models import CustodyKey, WorkloadKeyset

__all__ = ["CustodyVerdict", "recover_chain", "verify_custody"]

_ISSUED = b"dstack-kms-issued:"


@dataclasses.dataclass(frozen=True, slots=True)
class CustodyVerdict:
    """``problem`` is None when every chain recovered to one accepted root and covers the keys."""

    problem: str | None
    kms_root: str | None = None  # compressed hex of the recovered root (when one was recovered)
    app_key: str | None = None


def _recover(signature: bytes, message: bytes) -> coincurve.PublicKey:
    v = signature[64]
    if v >= 27:
        v -= 27
    if v > 3:
        raise ValueError("recovery id out of range")
    return coincurve.PublicKey.from_signature_and_message(
        signature[:64] + bytes([v]), keccak(message), hasher=None
    )


def recover_chain(entry: CustodyKey, app_id: bytes) -> tuple[str, str]:
    """(app key, KMS root), both compressed hex. Raises ``ValueError`` if recovery fails."""
    app = _recover(entry.signature_chain[0], f"{entry.purpose}:{entry.kms_public_key}".encode())
    app_compressed = app.format(compressed=True)
    root = _recover(entry.signature_chain[1], _ISSUED + app_id + app_compressed)
    return app_compressed.hex(), root.format(compressed=True).hex()


def verify_custody(
    custody: Iterable[CustodyKey],
    keyset: WorkloadKeyset,
    *,
    app_id: str,
    accepted_roots: Iterable[str],
) -> CustodyVerdict:
    """Check every custody chain against ``accepted_roots`` and the keyset's receipt keys."""
    entries = tuple(custody)
    if not entries:
        return CustodyVerdict("the report carries no key custody evidence")
    try:
        app_id_bytes = bytes.fromhex(app_id)
    except ValueError:
        return CustodyVerdict("the measured app id is not hex")
    roots = set(accepted_roots)
    app_key = root = None
    for i, entry in enumerate(entries):
        try:
            entry_app, entry_root = recover_chain(entry, app_id_bytes)
        except ValueError as exc:
            return CustodyVerdict(f"custody entry {i} ({entry.role}) does not recover: {exc}")
        if entry_root not in roots:
            return CustodyVerdict(
                f"custody entry {i} ({entry.role}) chains to KMS root {entry_root[:16]}…, "
                "which the trust anchors do not accept",
                kms_root=entry_root,
            )
        if (app_key, root) not in ((None, None), (entry_app, entry_root)):
            return CustodyVerdict("custody entries chain through different app keys or roots")
        app_key, root = entry_app, entry_root
        if entry.algo.startswith("secp256k1") and not _same_k256(entry):
            return CustodyVerdict(f"custody entry {i}: kms_public_key is not the entry's key")
    covered = {e.public_key for e in entries if e.role == "receipt"}
    uncovered = [k.key_id for k in keyset.receipt_keys if k.public_key not in covered]
    if uncovered:
        return CustodyVerdict(
            f"receipt key {uncovered[0][:64]!r} has no custody chain",
            kms_root=root,
            app_key=app_key,
        )
    listed = {k.public_key for k in keyset.receipt_keys + keyset.e2ee_keys}
    stray = [e.role for e in entries if e.public_key not in listed]
    if stray:
        return CustodyVerdict(
            f"custody entry for role {stray[0]!r} names a key the keyset does not list",
            kms_root=root,
            app_key=app_key,
        )
    return CustodyVerdict(None, kms_root=root, app_key=app_key)


def _same_k256(entry: CustodyKey) -> bool:
    """For a secp256k1 key the chain's ``kms_public_key`` is that key, compressed."""
    try:
        key = coincurve.PublicKey(bytes.fromhex(entry.public_key))
    except ValueError:
        return False
    return key.format(compressed=True).hex() == entry.kms_public_key
