"""Per-response signatures (SPEC §2.2): the signed text, our hashes, ecdsa and ed25519.

Canonical signer form (used everywhere in the package, including node selection and receipts): the
recovered ecdsa address or the verified ed25519 public key as **lower-case hex without ``0x``**
(40 or 64 characters).

ecdsa recovery is EIP-191 ``personal_sign`` exactly as ``eth_account.Account.recover_message(
encode_defunct(text=...))`` computes it, done directly with coincurve (libsecp256k1) and keccak: the
same maths without eth_account's object layers, about 5x faster (the unit tests cross-check both on
the published samples and on random keys).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_hash.auto import keccak

from redpill_integrations.errors import DuplicateJSONKey, MalformedEvidence
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify.encoding import decode_hex, loads_strict, norm_hex
from redpill_integrations.verify.models import SignatureCheck, SignatureRecord
from redpill_integrations.verify.served_model import response_models

__all__ = ["SignedText", "check_signature", "parse_signed_text", "recover_eip191_address"]

_PASS, _FAIL, _SKIP = CheckOutcome.PASS, CheckOutcome.FAIL, CheckOutcome.NOT_CHECKED


@dataclasses.dataclass(frozen=True, slots=True)
class SignedText:
    request_sha256: str  # lower-case hex
    response_sha256: str
    served_model: str | None = None


def parse_signed_text(text: str) -> SignedText:
    """``req:resp`` or ``model:req:resp`` (split from the right: the model may contain ``:``).

    Raises :class:`MalformedEvidence` for anything else.
    """
    parts = text.rsplit(":", 2)
    if len(parts) < 2:
        raise MalformedEvidence("signed text has no ':'-separated hashes")
    model = parts[0] if len(parts) == 3 else None
    if model is not None and not model.strip():
        raise MalformedEvidence("signed text has an empty model field")
    if parts[-2][:2].lower() == "0x" or parts[-1][:2].lower() == "0x":
        raise MalformedEvidence("signed text hashes must not carry 0x")
    req = norm_hex(parts[-2], what="signed request hash", nbytes=32)
    resp = norm_hex(parts[-1], what="signed response hash", nbytes=32)
    return SignedText(request_sha256=req, response_sha256=resp, served_model=model)


def recover_eip191_address(text: str, signature: bytes) -> str:
    """EIP-191 ``personal_sign`` recovery; the address in canonical form. Raises ValueError."""
    if len(signature) != 65:
        raise ValueError("ecdsa signature must be 65 bytes")
    v = signature[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        raise ValueError("ecdsa signature has an invalid recovery id")
    message = text.encode()
    digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)
    public = coincurve.PublicKey.from_signature_and_message(
        signature[:64] + bytes((v,)), digest, hasher=None
    )
    return keccak(public.format(compressed=False)[1:])[-20:].hex()


def _verify_signer(record: SignatureRecord) -> tuple[str | None, str | None]:
    """(signer, problem): exactly one is None."""
    algo = record.signing_algo.lower()
    try:
        if algo == "ecdsa":
            sig = decode_hex(record.signature, what="ecdsa signature", nbytes=65, max_len=130)
            signer = recover_eip191_address(record.text, sig)
            if record.signing_address is not None:
                claimed = norm_hex(record.signing_address, what="signing_address", nbytes=20)
                if claimed != signer:
                    return None, "ecdsa signature does not recover to the signing_address"
            return signer, None
        if algo == "ed25519":
            if record.signing_address is None:
                return None, "ed25519 signature record carries no public key"
            key = decode_hex(record.signing_address, what="ed25519 public key", nbytes=32)
            sig = decode_hex(record.signature, what="ed25519 signature", nbytes=64, max_len=128)
            Ed25519PublicKey.from_public_bytes(key).verify(sig, record.text.encode())
            return key.hex(), None
    except InvalidSignature:
        return None, "ed25519 signature does not verify"
    except (MalformedEvidence, ValueError, TypeError) as exc:
        # coincurve raises ValueError/TypeError for signatures with no valid recovery.
        return None, f"{algo} signature unusable: {exc}"
    return None, f"unknown signing algorithm {record.signing_algo[:32]!r}"


def _normalized_sha256(body: bytes) -> tuple[str | None, Reason | None]:
    """sha256 of ``json.dumps(json.loads(body))`` (Python defaults), or the reason it can't be."""
    try:
        value = loads_strict(body, what="response body")
        return hashlib.sha256(json.dumps(value).encode()).hexdigest(), None
    except DuplicateJSONKey:
        return None, Reason.DUPLICATE_JSON_KEY
    except (MalformedEvidence, ValueError, RecursionError):
        return None, None


def check_signature(
    record: SignatureRecord,
    *,
    request_body: bytes,
    response_body: bytes,
    streamed: bool,
    policy: VerificationPolicy,
) -> SignatureCheck:
    """Check ``record`` against sha256 of the captured bytes and recover/verify its signer.

    Sets checks ``signature``, ``request_hash``, ``response_hash``; never raises for bad evidence.
    ``hash_mode`` is ``"bytes"`` when the exact response bytes matched, ``"json-normalized"`` when
    only the ``json.dumps(json.loads(body))`` form did (non-streamed bodies, policy permitting), and
    ``None`` when the response hash did not match.
    """
    req_hash = hashlib.sha256(request_body).hexdigest()
    resp_hash = hashlib.sha256(response_body).hexdigest()
    checks: dict[str, CheckOutcome] = {}
    reasons: list[Reason] = []

    signer, problem = _verify_signer(record)
    checks["signature"] = _PASS if signer is not None else _FAIL
    if problem is not None:
        reasons.append(Reason.SIGNATURE_INVALID)

    hash_mode: str | None = None
    served_model: str | None = None
    try:
        signed = parse_signed_text(record.text)
    except MalformedEvidence:
        reasons.append(Reason.SIGNED_TEXT_MALFORMED)
        checks["request_hash"] = checks["response_hash"] = _FAIL
    else:
        served_model = signed.served_model
        if signed.request_sha256 == req_hash:
            checks["request_hash"] = _PASS
        else:
            checks["request_hash"] = _FAIL
            reasons.append(Reason.REQUEST_HASH_MISMATCH)
        if signed.response_sha256 == resp_hash:
            checks["response_hash"], hash_mode = _PASS, "bytes"
        else:
            normalized, why = (None, None)
            if not streamed and policy.allow_json_normalized_hash:
                normalized, why = _normalized_sha256(response_body)
            if normalized is not None and normalized == signed.response_sha256:
                checks["response_hash"], hash_mode = _PASS, "json-normalized"
            else:
                checks["response_hash"] = _FAIL
                reasons.append(why or Reason.RESPONSE_HASH_MISMATCH)

    return SignatureCheck(
        checks=checks,
        reasons=tuple(reasons),
        request_sha256=req_hash,
        response_sha256=resp_hash,
        signed_text=record.text,
        signature=record.signature,
        signing_algo=record.signing_algo,
        signer=signer,
        hash_mode=hash_mode,
        served_model=served_model,
        response_models=response_models(response_body, streamed=streamed),
        detail=problem,
    )
