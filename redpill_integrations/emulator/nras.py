"""An NVIDIA-NRAS-shaped GPU attestation service: ES384 tokens and their JWKS.

It does not trust the payload blindly: it checks the shape of the evidence and puts the payload's
own nonce into ``eat_nonce``. It never claims real GPUs: ``hwmodel`` is ``EMULATED-GH100``.

Like NVIDIA's, its JWKS key carries an ``x5c`` chain: a leaf certificate for the signing key, issued
by the emulator's own test NRAS CA (:func:`nras_ca_der`), which the emulator's trust file pins.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import time
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from redpill_integrations.emulator.pki import derive_ec_key

__all__ = ["NrasService", "PayloadError", "make_nvidia_payload", "nras_ca_der"]

# fixed, wide validity: the certificates are deterministic for a seed and any injected clock works
_VALID_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_VALID_UNTIL = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


class PayloadError(ValueError):
    """The posted evidence is not an NRAS request."""


def _b64url(n: int) -> str:
    return _b64(n.to_bytes(48, "big"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_es384(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """A compact JWS (ES384, raw r‖s signature), like NRAS's tokens."""
    header = _b64(json.dumps({"kid": kid, "alg": "ES384"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA384())))
    return f"{header}.{payload}.{_b64(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, "Redpill Emulator (TEST PKI, NOT NVIDIA)"
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _certificate(
    seed: bytes,
    *,
    subject: str,
    key: ec.EllipticCurvePublicKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    serial = int.from_bytes(
        hashlib.sha256(seed + b"|nras-serial|" + subject.encode()).digest()[:16]
    )
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key)
        .serial_number(serial >> 1)
        .not_valid_before(_VALID_FROM)
        .not_valid_after(_VALID_UNTIL)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage),
            critical=True,
        )
        .sign(signer, hashes.SHA384(), ecdsa_deterministic=True)
    )


def _ca_key(seed: bytes) -> ec.EllipticCurvePrivateKey:
    return derive_ec_key(seed, "nras-ca", ec.SECP384R1())


_CA_NAME = "Redpill Emulator NRAS CA"


@functools.lru_cache(maxsize=8)
def nras_ca_der(seed: bytes) -> bytes:
    """DER of the emulator's test NRAS CA for ``seed`` (what its trust file pins)."""
    key = _ca_key(seed)
    cert = _certificate(
        seed, subject=_CA_NAME, key=key.public_key(), issuer=_CA_NAME, signer=key, ca=True
    )
    return cert.public_bytes(serialization.Encoding.DER)


def make_nvidia_payload(nonce_hex: str, gpu_count: int, seed: bytes) -> str:
    """The report's ``nvidia_payload`` JSON string: ``{"nonce","evidence_list","arch"}``."""
    evidence = []
    for i in range(gpu_count):
        ev = hashlib.sha512(seed + f"|gpu{i}|".encode() + nonce_hex.encode()).digest()
        cert = base64.b64encode(f"EMULATED GPU {i} CERTIFICATE CHAIN".encode()).decode()
        evidence.append(
            {"certificate": cert, "evidence": base64.b64encode(ev).decode(), "arch": "HOPPER"}
        )
    return json.dumps({"nonce": nonce_hex, "evidence_list": evidence, "arch": "HOPPER"})


class NrasService:
    """Signs tokens for ``POST /v3/attest/gpu``; ``issuer`` is the emulator origin."""

    def __init__(self, seed: bytes, issuer: str) -> None:
        self.issuer = issuer
        self._key = derive_ec_key(seed, "nras", ec.SECP384R1())
        self._rogue = derive_ec_key(seed, "nras-rogue", ec.SECP384R1())
        self.kid = "emulator-nras-" + hashlib.sha256(seed + b"|kid").hexdigest()[:16]
        leaf = _certificate(
            seed,
            subject="Redpill Emulator NRAS signing key",
            key=self._key.public_key(),
            issuer=_CA_NAME,
            signer=_ca_key(seed),
            ca=False,
        )
        self.x5c = [
            base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode(),
            base64.b64encode(nras_ca_der(seed)).decode(),
        ]

    def jwks(self) -> dict[str, Any]:
        pub = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-384",
                    "kid": self.kid,
                    "use": "sig",
                    "alg": "ES384",
                    "x": _b64url(pub.x),
                    "y": _b64url(pub.y),
                    "x5c": list(self.x5c),
                }
            ]
        }

    def attest(
        self,
        body: bytes,
        *,
        wrong_nonce: bool = False,
        unknown_key: bool = False,
        now: float | None = None,
    ) -> list[Any]:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise PayloadError("body is not JSON") from exc
        if not isinstance(payload, dict):
            raise PayloadError("body is not a JSON object")
        nonce, evidence = payload.get("nonce"), payload.get("evidence_list")
        if not isinstance(nonce, str) or len(nonce) != 64:
            raise PayloadError("nonce must be 64 hex characters")
        try:
            bytes.fromhex(nonce)
        except ValueError as exc:
            raise PayloadError("nonce must be hex") from exc
        if (
            not isinstance(evidence, list)
            or not evidence
            or len(evidence) > 16
            or not all(isinstance(e, dict) and isinstance(e.get("evidence"), str) for e in evidence)
        ):
            raise PayloadError("evidence_list must list 1-16 evidence objects")
        if wrong_nonce:
            nonce = hashlib.sha256(b"wrong" + nonce.encode()).hexdigest()
        iat = int(now if now is not None else time.time())
        key, kid = (self._rogue, "emulator-nras-rogue") if unknown_key else (self._key, self.kid)
        common = {"iss": self.issuer, "iat": iat, "nbf": iat, "exp": iat + 3600, "eat_nonce": nonce}
        gpu_tokens: dict[str, str] = {}
        for i, _ev in enumerate(evidence):
            claims = {
                **common,
                "jti": str(uuid.uuid4()),
                "hwmodel": "EMULATED-GH100",
                "ueid": str(
                    int.from_bytes(hashlib.sha256(f"ueid{i}".encode()).digest()[:16], "big")
                ),
                "oemid": "5703",
                "dbgstat": "disabled",
                "secboot": True,
                "measres": "success",
                "x-nvidia-gpu-arch-check": True,
                "x-nvidia-gpu-attestation-report-signature-verified": True,
                "x-nvidia-gpu-attestation-report-nonce-match": True,
                "x-nvidia-gpu-attestation-report-cert-chain-validated": True,
                "x-nvidia-gpu-driver-rim-measurements-available": True,
                "x-nvidia-gpu-vbios-rim-measurements-available": True,
                "x-nvidia-gpu-driver-version": "570.172.08",
                "x-nvidia-gpu-vbios-version": "96.00.CF.00.02",
                "x-nvidia-attestation-warning": "EMULATOR: not a real GPU",
            }
            gpu_tokens[f"GPU-{i}"] = sign_es384(claims, key, kid)
        platform = {
            **common,
            "sub": "NVIDIA-PLATFORM-ATTESTATION",
            "x-nvidia-ver": "2.0",
            "jti": str(uuid.uuid4()),
            "x-nvidia-overall-att-result": True,
            "submods": {
                name: ["DIGEST", ["SHA-256", hashlib.sha256(tok.encode()).hexdigest()]]
                for name, tok in gpu_tokens.items()
            },
        }
        platform_token = sign_es384(platform, key, kid)
        return [["JWT", platform_token], gpu_tokens]
