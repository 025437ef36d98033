"""NRAS signing keys pinned to NVIDIA's certificates through their JWK ``x5c`` chains.

A JWKS fetched over TLS (or bundled in a receipt) is not trusted by itself: every key that verifies
a token must carry an ``x5c`` chain (leaf first, standard base64 DER) such that

* the leaf's public key is the JWK's key;
* each certificate is signed by the next one, and every issuer is a CA (basicConstraints);
* the last certificate is itself a pinned NRAS CA certificate (same SPKI sha256), or its signature
  verifies under one of the pinned certificates;
* every certificate involved, the matching or issuing pin included, is valid at the instants
  checked (:func:`chain_invalid_at`).

Pure: DER certificates in, a :class:`KeyChain` out. Why NVIDIA's *intermediate* is pinned and how to
refresh it: ``docs/nvidia-nras-pinning.md``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["KeyChain", "chain_invalid_at", "check_chain", "parse_pins", "spki_sha256"]

MAX_CHAIN_CERTS = 6
MAX_CERT_B64 = 16 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class KeyChain:
    """The time-independent outcome of one key's chain; ``error`` None means it chains to a pin.

    ``not_before``/``not_after`` bound the instants at which every certificate involved (the
    issuing pin included) is valid.
    """

    error: str | None
    not_before: datetime | None = None
    not_after: datetime | None = None


def spki_sha256(cert: x509.Certificate) -> str:
    """Lower-hex sha256 of the certificate's DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@functools.lru_cache(maxsize=8)
def parse_pins(ders: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """The pinned certificates that parse (one that does not can never match: fail closed)."""
    out = []
    for der in ders:
        try:
            out.append(x509.load_der_x509_certificate(bytes(der)))
        except (ValueError, TypeError):
            continue
    return tuple(out)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.ca


@functools.lru_cache(maxsize=256)
def check_chain(
    x5c: tuple[str, ...] | None, jwk_xy: tuple[int, int], pins: tuple[bytes, ...]
) -> KeyChain:
    """Check one JWK's ``x5c`` against ``pins`` (cached: NRAS's JWKS holds ~30 keys)."""
    if not x5c:
        return KeyChain("no x5c chain")
    if len(x5c) > MAX_CHAIN_CERTS:
        return KeyChain(f"x5c chain broken: more than {MAX_CHAIN_CERTS} certificates")
    certs: list[x509.Certificate] = []
    for i, b64 in enumerate(x5c):
        try:
            if len(b64) > MAX_CERT_B64:
                raise ValueError("too large")
            certs.append(x509.load_der_x509_certificate(base64.b64decode(b64, validate=True)))
        except (ValueError, TypeError, binascii.Error):
            return KeyChain(f"x5c chain broken: certificate {i} does not parse")
    leaf_key = certs[0].public_key()
    if not (
        isinstance(leaf_key, ec.EllipticCurvePublicKey)
        and isinstance(leaf_key.curve, ec.SECP384R1)
        and (leaf_key.public_numbers().x, leaf_key.public_numbers().y) == jwk_xy
    ):
        return KeyChain("x5c chain broken: the leaf certificate's key is not the JWK's key")
    for i in range(len(certs) - 1):
        if not _is_ca(certs[i + 1]):
            return KeyChain(f"x5c chain broken: certificate {i + 1} is not a CA")
        if not _issued_by(certs[i], certs[i + 1]):
            return KeyChain(
                f"x5c chain broken: certificate {i} is not issued by certificate {i + 1}"
            )
    last = certs[-1]
    pinned = parse_pins(pins)
    # the pin itself counts for validity too: a copy of its key in a certificate of one's own
    # making must not extend its dates
    same_key = next((p for p in pinned if spki_sha256(p) == spki_sha256(last)), None)
    anchor = same_key or next((p for p in pinned if _is_ca(p) and _issued_by(last, p)), None)
    if anchor is None:
        return KeyChain("x5c chain not pinned: no pinned NRAS CA issued its last certificate")
    involved = [*certs, anchor]
    return KeyChain(
        None,
        not_before=max(c.not_valid_before_utc for c in involved),
        not_after=min(c.not_valid_after_utc for c in involved),
    )


def chain_invalid_at(chain: KeyChain, instants: Sequence[int]) -> str | None:
    """Why a chain that passed :func:`check_chain` is unusable at one of ``instants`` (Unix s)."""
    assert chain.not_before is not None and chain.not_after is not None
    for t in instants:
        try:
            when = datetime.fromtimestamp(t, tz=UTC)
        except (OverflowError, ValueError, OSError):
            return "x5c chain checked at an instant out of range"
        if when >= chain.not_after:
            return f"x5c chain expired at {when.isoformat()} (valid until {chain.not_after})"
        if when < chain.not_before:
            return f"x5c chain not yet valid at {when.isoformat()} (from {chain.not_before})"
    return None
