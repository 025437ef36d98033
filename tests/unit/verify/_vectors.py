"""Shared vectors and helpers for the pure-core tests (real recorded data, see tests/vectors/).

Imported by the test modules; the fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from redpill_integrations.verify import AttestationEvidence

VECTORS = Path(__file__).resolve().parents[2] / "vectors"

NEAR_NONCE = "541b6523f9446dcd170e67ac8171eb9226bee5e3f192de4900b74f0ef293500b"
NEAR_KEY = "d0aa20bcf567cc0c7c914608967dbd4c7a17e10b600802d45923434ce323f823"
NEAR_FMSPC = "90c06f000000"
NEAR_NOW = datetime(2026, 6, 29, 2, 6, 40, tzinfo=UTC)
CLOUD_NONCE = "e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609"
CLOUD_NOW = datetime(2026, 6, 29, 2, 7, 0, tzinfo=UTC)
NRAS_ISSUER = "https://nras.attestation.nvidia.com"


def vector_bytes(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def vector_json(name: str) -> Any:
    return json.loads(vector_bytes(name))


_CACHE: dict[str, bytes] = {}


def cached(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = vector_bytes(name)
    return _CACHE[name]


def near_evidence(report: bytes | None = None, **changes: Any) -> AttestationEvidence:
    """The complete real NEAR direct evidence (report, collateral, NRAS answer, JWKS)."""
    values: dict[str, Any] = {
        "report": report
        if report is not None
        else cached("teep_neardirect_attestation_report.json"),
        "nonce": NEAR_NONCE,
        "collateral": {NEAR_FMSPC: cached("teep_neardirect_collateral_v3.json").decode()},
        "nras_response": cached("teep_neardirect_nras_response.json"),
        "nras_jwks": cached("teep_neardirect_nras_jwks.json"),
    }
    values.update(changes)
    return AttestationEvidence(**values)


def near_report_dict() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cached("teep_neardirect_attestation_report.json"))
    return data


def dump(data: Any) -> bytes:
    return json.dumps(data).encode()


# --- minting our own ES384 tokens, to test claim logic behind a valid signature -------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class CertAuthority:
    """A test CA (P-384): self-signed, or issued by ``parent``; it issues certificates."""

    def __init__(
        self,
        name: str = "Test NRAS CA",
        *,
        parent: CertAuthority | None = None,
        not_before: datetime = NEAR_NOW - timedelta(days=365),
        not_after: datetime = NEAR_NOW + timedelta(days=365),
    ) -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP384R1())
        issuer = parent or self
        self.cert = issuer.issue(
            self.key.public_key(), name, ca=True, not_before=not_before, not_after=not_after
        )
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.b64 = base64.b64encode(self.der).decode()

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        name: str,
        *,
        ca: bool = False,
        not_before: datetime = NEAR_NOW - timedelta(days=1),
        not_after: datetime = NEAR_NOW + timedelta(days=1),
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(self.key, hashes.SHA384())
        )


#: the test NRAS CA every TokenMinter key chains to by default (pin it with ``TEST_PINS``)
TEST_NRAS_CA = CertAuthority()
TEST_PINS = (TEST_NRAS_CA.der,)


class TokenMinter:
    """A P-384 key with a JWKS entry: signs NRAS-shaped tokens whose claims tests control.

    Its JWK carries ``x5c = [leaf, ca]`` like NVIDIA's (``ca=None``: no ``x5c`` at all).
    """

    def __init__(
        self, kid: str = "test-kid", *, ca: CertAuthority | None = TEST_NRAS_CA, **leaf: Any
    ) -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.x5c: list[str] | None = None
        if ca is not None:
            cert = ca.issue(self.key.public_key(), f"NRAS signing key {kid}"[:64], **leaf)
            self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
            self.x5c.append(ca.b64)

    def jwk(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        out: dict[str, Any] = {
            "kty": "EC",
            "crv": "P-384",
            "kid": self.kid,
            "x": b64url(numbers.x.to_bytes(48, "big")),
            "y": b64url(numbers.y.to_bytes(48, "big")),
        }
        if self.x5c is not None:
            out["x5c"] = list(self.x5c)
        return out

    def jwks(self) -> bytes:
        return dump({"keys": [self.jwk()]})

    def token(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = header if header is not None else {"alg": "ES384", "kid": self.kid}
        signing_input = f"{b64url(dump(head))}.{b64url(dump(claims))}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


def nras_answer(
    minter: TokenMinter,
    *,
    nonce: str = NEAR_NONCE,
    gpus: int = 1,
    now: datetime = NEAR_NOW,
    platform: dict[str, Any] | None = None,
    gpu: dict[str, Any] | None = None,
) -> bytes:
    """An NRAS-shaped answer signed by ``minter``; ``platform``/``gpu`` override claims."""
    import hashlib

    t = int(now.timestamp())
    base = {"iss": NRAS_ISSUER, "iat": t - 10, "nbf": t - 10, "exp": t + 3600, "eat_nonce": nonce}
    gpu_tokens = {
        f"GPU-{i}": minter.token(
            {**base, "measres": "success", "dbgstat": "disabled", "hwmodel": "GH100", **(gpu or {})}
        )
        for i in range(gpus)
    }
    submods = {
        name: ["DIGEST", ["SHA-256", hashlib.sha256(tok.encode()).hexdigest()]]
        for name, tok in gpu_tokens.items()
    }
    claims = {**base, "x-nvidia-overall-att-result": True, "submods": submods, **(platform or {})}
    return dump([["JWT", minter.token(claims)], gpu_tokens])
