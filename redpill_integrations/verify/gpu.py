"""NVIDIA GPU evidence: the report's ``nvidia_payload`` and NRAS's signed answer.

See docs/protocol-legacy.md §10.

NRAS answers ``[["JWT", platform_token], {"GPU-0": gpu_token, ...}]``. Every token is verified
locally against the JWKS passed in: ``alg`` must be ES384 (``none``/HS*/anything else rejected), the
key is picked by ``kid``, ``iss`` must be the configured NRAS origin, ``exp``/``nbf`` are checked
against the injected ``now``. The JWKS itself is not trusted: the key must chain through its ``x5c``
to one of the pinned NRAS CA certificates, valid at the token's ``iat`` and at ``now``
(:mod:`redpill_integrations.verify.x5c`, ``docs/nvidia-nras-pinning.md``). The platform token must
carry ``eat_nonce == nonce`` and ``x-nvidia-overall-att-result: true``, and one ``submods`` digest
per GPU equal to sha256 of that GPU's token; each GPU token must say ``measres: success`` and
``dbgstat: disabled``.
Server-asserted verdicts (in the report or the payload) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from redpill_integrations.errors import EvidenceError, MalformedEvidence
from redpill_integrations.results import Reason
from redpill_integrations.verify.encoding import as_dict, loads_strict, norm_hex
from redpill_integrations.verify.tdx import epoch_seconds
from redpill_integrations.verify.x5c import chain_invalid_at, check_chain

__all__ = [
    "GpuVerification",
    "NrasKey",
    "payload_gpu_count",
    "payload_nonce",
    "verify_jwt",
    "verify_nras",
]

MAX_NRAS_BYTES = 4 * 1024 * 1024
MAX_JWKS_BYTES = 4 * 1024 * 1024
NBF_LEEWAY_SECONDS = 60
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class _Rejected(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class NrasKey:
    """One usable JWKS entry: its P-384 key and its ``x5c`` (None when absent or not strings)."""

    key: ec.EllipticCurvePublicKey
    xy: tuple[int, int]
    x5c: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True, slots=True)
class GpuVerification:
    reason: Reason | None  # None: every GPU check passed
    detail: str | None = None
    gpu_count: int = 0
    claims: dict[str, Any] = dataclasses.field(default_factory=dict)
    valid_until: datetime | None = None


def _payload(nvidia_payload: str) -> dict[str, Any]:
    return as_dict(loads_strict(nvidia_payload, what="nvidia_payload"), what="nvidia_payload")


def payload_nonce(nvidia_payload: str) -> str:
    """The nonce the GPU evidence was produced for (lower hex). Raises ``EvidenceError``."""
    return norm_hex(_payload(nvidia_payload).get("nonce"), what="nvidia_payload.nonce", nbytes=32)


def payload_gpu_count(nvidia_payload: str) -> int:
    evidence = _payload(nvidia_payload).get("evidence_list")
    if not isinstance(evidence, list):
        raise MalformedEvidence("nvidia_payload.evidence_list is not a list")
    return len(evidence)


def _b64url(part: str, what: str) -> bytes:
    if not _B64URL.fullmatch(part):
        raise _Rejected(Reason.GPU_TOKEN_INVALID, f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _Rejected(Reason.GPU_TOKEN_INVALID, f"{what} is not base64url") from exc


@functools.lru_cache(maxsize=8)
def _jwks_keys(jwks: bytes) -> Mapping[str, NrasKey]:
    """The usable P-384 keys of a JWKS body by ``kid`` (cached: NRAS's JWKS is ~80 KB, ~50 keys)."""
    data = as_dict(loads_strict(jwks, what="NRAS JWKS", max_bytes=MAX_JWKS_BYTES), what="JWKS")
    keys = data.get("keys")
    if not isinstance(keys, list):
        raise MalformedEvidence("JWKS has no keys list")
    out: dict[str, NrasKey] = {}
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-384":
            continue
        kid, x, y = jwk.get("kid"), jwk.get("x"), jwk.get("y")
        if not (isinstance(kid, str) and isinstance(x, str) and isinstance(y, str)):
            continue
        try:
            xb, yb = _b64url(x, "jwk x"), _b64url(y, "jwk y")
            if len(xb) != 48 or len(yb) != 48:
                continue
            xy = (int.from_bytes(xb, "big"), int.from_bytes(yb, "big"))
            key = ec.EllipticCurvePublicNumbers(*xy, ec.SECP384R1()).public_key()
            out.setdefault(kid, NrasKey(key=key, xy=xy, x5c=_x5c(jwk.get("x5c"))))
        except (_Rejected, ValueError):
            continue  # a key not on the curve is simply unusable
    return MappingProxyType(out)


def _x5c(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        return None
    return tuple(value)


def verify_jwt(
    token: Any,
    keys: Mapping[str, NrasKey],
    *,
    issuer: str,
    now: int,
    ca_certs_der: Sequence[bytes],
) -> dict[str, Any]:
    """The verified claims of one NRAS token; raises ``_Rejected`` (GPU_TOKEN_INVALID)."""
    return _verify_token(token, keys, issuer=issuer, now=now, pins=tuple(ca_certs_der))[0]


def _verify_token(
    token: Any, keys: Mapping[str, NrasKey], *, issuer: str, now: int, pins: tuple[bytes, ...]
) -> tuple[dict[str, Any], datetime]:
    """The verified claims and the instant the signing key's chain stops being valid."""
    bad = Reason.GPU_TOKEN_INVALID
    if not isinstance(token, str) or len(token) > MAX_NRAS_BYTES:
        raise _Rejected(bad, "token is not a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise _Rejected(bad, "token is not a compact JWS")
    try:
        header = as_dict(
            loads_strict(_b64url(parts[0], "JWT header"), what="JWT header"), what="JWT header"
        )
        claims = as_dict(
            loads_strict(_b64url(parts[1], "JWT payload"), what="JWT payload"), what="JWT payload"
        )
    except EvidenceError as exc:
        raise _Rejected(bad, f"token does not decode: {exc}") from exc
    if header.get("alg") != "ES384":
        raise _Rejected(bad, f"token alg {str(header.get('alg'))[:16]!r} is not ES384")
    if "crit" in header:
        raise _Rejected(bad, "token has critical header parameters")
    entry = keys.get(header["kid"]) if isinstance(header.get("kid"), str) else None
    if entry is None:
        raise _Rejected(bad, "token kid is not in the JWKS")
    sig = _b64url(parts[2], "JWT signature")
    if len(sig) != 96:
        raise _Rejected(bad, "token signature is not 96 bytes")
    der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    try:
        entry.key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise _Rejected(bad, "token signature does not verify") from exc
    if claims.get("iss") != issuer:
        raise _Rejected(bad, "token issuer is not the configured NRAS")
    exp, nbf = _seconds(claims.get("exp")), _seconds(claims.get("nbf"))
    if exp is None:
        raise _Rejected(bad, "token has no numeric exp")
    if now >= exp:
        raise _Rejected(bad, "token has expired")
    if "nbf" in claims and (nbf is None or now + NBF_LEEWAY_SECONDS < nbf):
        raise _Rejected(bad, "token is not yet valid")
    chain = check_chain(entry.x5c, entry.xy, pins)
    if chain.error is None:
        iat = _seconds(claims.get("iat"))
        chain_error = chain_invalid_at(chain, [now] if iat is None else [int(iat), now])
    else:
        chain_error = chain.error
    if chain_error is not None:
        raise _Rejected(bad, f"NRAS signing key: {chain_error}")
    assert chain.not_after is not None
    return claims, chain.not_after


def _seconds(value: Any) -> float | None:
    """A finite JSON number (bools and NaN/inf excluded), else None."""
    if type(value) not in (int, float) or not math.isfinite(value):
        return None
    return float(value)


def _instant(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _gpu_summary(claims: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "hwmodel",
        "measres",
        "dbgstat",
        "x-nvidia-gpu-driver-version",
        "x-nvidia-gpu-vbios-version",
    )
    return {
        k.removeprefix("x-nvidia-gpu-"): claims.get(k)
        for k in keys
        if isinstance(claims.get(k), str | bool | int)
    }


def verify_nras(
    response: bytes,
    jwks: bytes,
    *,
    nonce: str,
    issuer: str,
    now: datetime,
    ca_certs_der: Sequence[bytes],
    expected_gpus: int | None = None,
) -> GpuVerification:
    """Verify NRAS's answer for ``nonce``; its keys must chain to ``ca_certs_der`` (the pins).

    Never raises for bad evidence.
    """
    try:
        return _verify_nras(
            response,
            jwks,
            nonce=nonce,
            issuer=issuer,
            now=epoch_seconds(now),
            pins=tuple(bytes(c) for c in ca_certs_der),
            expected_gpus=expected_gpus,
        )
    except _Rejected as exc:
        return GpuVerification(reason=exc.reason, detail=exc.detail)
    except EvidenceError as exc:
        return GpuVerification(reason=Reason.GPU_TOKEN_INVALID, detail=f"NRAS evidence: {exc}")
    except TypeError:  # evidence that is not bytes at all
        return GpuVerification(reason=Reason.GPU_TOKEN_INVALID, detail="NRAS evidence unusable")


def _verify_nras(
    response: bytes,
    jwks: bytes,
    *,
    nonce: str,
    issuer: str,
    now: int,
    pins: tuple[bytes, ...],
    expected_gpus: int | None,
) -> GpuVerification:
    bad = Reason.GPU_TOKEN_INVALID
    keys = _jwks_keys(bytes(jwks))
    answer = loads_strict(response, what="NRAS response", max_bytes=MAX_NRAS_BYTES)
    if not (
        isinstance(answer, list)
        and len(answer) == 2
        and isinstance(answer[0], list)
        and len(answer[0]) == 2
        and answer[0][0] == "JWT"
        and isinstance(answer[1], dict)
    ):
        raise _Rejected(bad, 'NRAS response is not [["JWT", token], {gpu: token}]')
    platform, chain_end = _verify_token(answer[0][1], keys, issuer=issuer, now=now, pins=pins)
    if platform.get("eat_nonce") != nonce:
        raise _Rejected(Reason.GPU_NONCE_MISMATCH, "NRAS eat_nonce is not our nonce")
    if platform.get("x-nvidia-overall-att-result") is not True:
        raise _Rejected(Reason.GPU_CLAIMS_REJECTED, "NRAS overall attestation result is not true")
    gpu_tokens: dict[str, Any] = answer[1]
    submods = platform.get("submods")
    if not isinstance(submods, dict) or set(submods) != set(gpu_tokens) or not gpu_tokens:
        raise _Rejected(bad, "platform submods do not list exactly the GPU tokens")
    expiries = [float(platform["exp"]), chain_end.timestamp()]
    per_gpu: dict[str, Any] = {}
    for name in sorted(gpu_tokens):
        token = gpu_tokens[name]
        claims, chain_end = _verify_token(token, keys, issuer=issuer, now=now, pins=pins)
        expiries.append(chain_end.timestamp())
        digest = submods[name]
        if not (
            isinstance(digest, list)
            and len(digest) == 2
            and digest[0] == "DIGEST"
            and isinstance(digest[1], list)
            and len(digest[1]) == 2
            and str(digest[1][0]).upper().replace("-", "") == "SHA256"
            and digest[1][1] == hashlib.sha256(token.encode()).hexdigest()
        ):
            raise _Rejected(bad, f"{name[:16]} token digest differs from the platform submod")
        if "eat_nonce" in claims and claims["eat_nonce"] != nonce:
            raise _Rejected(Reason.GPU_NONCE_MISMATCH, f"{name[:16]} eat_nonce is not our nonce")
        if claims.get("measres") != "success":
            raise _Rejected(Reason.GPU_CLAIMS_REJECTED, f"{name[:16]} measurements did not match")
        if claims.get("dbgstat") != "disabled":
            raise _Rejected(Reason.GPU_CLAIMS_REJECTED, f"{name[:16]} debug status not disabled")
        if claims.get("x-nvidia-gpu-attestation-report-nonce-match", True) is not True:
            raise _Rejected(Reason.GPU_NONCE_MISMATCH, f"{name[:16]} report nonce did not match")
        expiries.append(float(claims["exp"]))
        per_gpu[name] = _gpu_summary(claims)
    if expected_gpus is not None and expected_gpus != len(gpu_tokens):
        raise _Rejected(
            Reason.GPU_CLAIMS_REJECTED,
            f"{len(gpu_tokens)} GPU tokens for {expected_gpus} GPUs of evidence",
        )
    return GpuVerification(
        reason=None,
        gpu_count=len(gpu_tokens),
        claims={"overall_att_result": True, "gpus": per_gpu},
        valid_until=_instant(min(expiries)),
    )
