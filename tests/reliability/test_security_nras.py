"""Security finding V3 (SECURITY.md; GPU half): a receipt cannot bring its own NVIDIA signing keys.

A forger re-signs the NRAS answer stored in a genuine receipt with a key of their own and bundles a
JWKS for it, with a self-made ``x5c`` chain (even one naming itself like the emulator's NRAS CA or
copying the genuine chain). Offline re-verification under the caller's trust anchors must reject
it with ``GPU_TOKEN_INVALID``: the bundled JWKS counts only if its keys chain to the caller's pins.
Before the pins existed, the forged receipt re-verified as ``verified``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from redpill_integrations.emulator import Emulator
from redpill_integrations.receipts import Receipt, reverify
from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

EMULATOR_CA_NAME = "Redpill Emulator NRAS CA"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


class Forger:
    """A P-384 signing key with a JWK whose x5c chain the forger made up."""

    def __init__(self, ca_name: str = EMULATOR_CA_NAME) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())
        ca_key = ec.generate_private_key(ec.SECP384R1())
        start = datetime(2020, 1, 1, tzinfo=UTC)
        end = start + timedelta(days=36500)

        def cert(cn: str, public: Any, issuer: str, ca: bool) -> str:
            built = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(public)
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA384())
            )
            return base64.b64encode(built.public_bytes(serialization.Encoding.DER)).decode()

        self.x5c = [
            cert("forged NRAS signing key", self.key.public_key(), ca_name, False),
            cert(ca_name, ca_key.public_key(), ca_name, True),
        ]

    def ca_der(self) -> tuple[bytes, ...]:
        return (base64.b64decode(self.x5c[1]),)

    def jwks(self, x5c: list[str] | None = None) -> bytes:
        numbers = self.key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-384",
            "kid": "forger",
            "x": _b64url(numbers.x.to_bytes(48, "big")),
            "y": _b64url(numbers.y.to_bytes(48, "big")),
            "x5c": x5c if x5c is not None else self.x5c,
        }
        return json.dumps({"keys": [jwk]}).encode()

    def sign(self, claims: dict[str, Any]) -> str:
        head = _b64url(json.dumps({"alg": "ES384", "kid": "forger"}).encode())
        signing_input = f"{head}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"

    def re_sign(self, nras_response: bytes) -> bytes:
        """The same NRAS answer (same nonce, same claims), signed by the forger's key."""
        (_, platform), gpus = json.loads(nras_response)
        tokens = {name: self.sign(_claims(tok)) for name, tok in gpus.items()}
        claims = _claims(platform)
        claims["submods"] = {
            name: ["DIGEST", ["SHA-256", hashlib.sha256(tok.encode()).hexdigest()]]
            for name, tok in tokens.items()
        }
        return json.dumps([["JWT", self.sign(claims)], tokens]).encode()


@pytest.fixture(scope="module")
def genuine(emulator: Emulator) -> Receipt:
    v = RedpillVerifier(base_url=emulator.base_url, api_key=emulator.api_key, trust=emulator.trust)
    sdk = openai.OpenAI(
        base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
    )
    tag = v.recorder.new_tag()
    sdk.chat.completions.create(
        model="phala/gpt-oss-120b",
        extra_headers={CAPTURE_HEADER: tag},
        messages=[{"role": "user", "content": "hi"}],
    )
    receipt = v.verify_exchange(v.recorder.take(tag))
    assert receipt.result.status is Status.VERIFIED
    return Receipt.from_json(receipt.to_json())


def forge(receipt: Receipt, nras_response: bytes, jwks: bytes) -> Receipt:
    assert receipt.attestation is not None
    evidence = dataclasses.replace(receipt.attestation, nras_response=nras_response, nras_jwks=jwks)
    return Receipt.from_json(dataclasses.replace(receipt, attestation=evidence).to_json())


def test_the_genuine_receipt_re_verifies(genuine: Receipt, emulator: Emulator) -> None:
    result = reverify(genuine, trust=emulator.trust)
    assert (result.status, result.reasons) == (Status.VERIFIED, ())


def test_the_genuine_chain_needs_the_emulators_pin(genuine: Receipt, emulator: Emulator) -> None:
    """The emulator's genuine answer fails under pins that do not name its NRAS CA."""
    other = dataclasses.replace(emulator.trust, nras_ca_certs_der=Forger().ca_der())
    result = reverify(genuine, trust=other)
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.GPU_TOKEN_INVALID,))


@pytest.mark.parametrize("chain", ["self-made", "named-like-the-pin", "copied-genuine"])
def test_a_receipt_bundling_the_forgers_jwks_fails(
    genuine: Receipt, emulator: Emulator, chain: str
) -> None:
    assert genuine.attestation is not None and genuine.attestation.nras_jwks is not None
    forger = Forger(ca_name="Forger CA" if chain == "self-made" else EMULATOR_CA_NAME)
    if chain == "copied-genuine":  # the emulator's real chain, on the forger's key
        jwks = forger.jwks(json.loads(genuine.attestation.nras_jwks)["keys"][0]["x5c"])
    else:
        jwks = forger.jwks()
    forged = forge(genuine, forger.re_sign(genuine.attestation.nras_response or b""), jwks)
    result = reverify(forged, trust=emulator.trust)
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.GPU_TOKEN_INVALID,))
    assert result.checks["gpu"] == "fail"
