"""Frozen models passed between the wire layer and the pure core.

``SignatureRecord`` and ``AttestationEvidence`` hold evidence exactly as received (so receipts
can re-verify it later); ``SignatureCheck`` and ``AttestationVerdict`` are the outcomes of the two
halves of a verification, which :func:`redpill_integrations.verify.assemble_result` joins into a
:class:`~redpill_integrations.results.VerificationResult`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redpill_integrations.errors import EvidenceError, MalformedEvidence
from redpill_integrations.results import AttestationSummary, CheckOutcome, Reason
from redpill_integrations.verify.encoding import loads_strict

__all__ = ["AttestationEvidence", "AttestationVerdict", "SignatureCheck", "SignatureRecord"]


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureRecord:
    """``GET /signature/{id}`` as received (SPEC §2.2)."""

    text: str
    signature: str
    signing_algo: str
    signing_address: str | None = None
    raw: bytes = b""

    @classmethod
    def from_json(cls, body: bytes) -> SignatureRecord:
        """Parse a signature body; raises :class:`MalformedEvidence` for anything else.

        A body without ``text`` (e.g. a 200 carrying ``{"error_code": ...}``) is malformed here: the
        wire layer decides whether it means "not yet available".
        """
        try:
            # depth-guarded, duplicate keys refused (a parser-differential trap), 1 MiB cap
            data = loads_strict(body, what="signature body", max_bytes=1 << 20)
        except EvidenceError as exc:
            raise MalformedEvidence(f"signature body is not usable JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedEvidence("signature body is not a JSON object")
        text, signature = data.get("text"), data.get("signature")
        algo = data.get("signing_algo", "ecdsa")
        address = data.get("signing_address")
        if not isinstance(text, str) or not isinstance(signature, str):
            raise MalformedEvidence("signature body lacks string 'text' and 'signature'")
        if not isinstance(algo, str) or (address is not None and not isinstance(address, str)):
            raise MalformedEvidence("signature body has wrongly typed 'signing_algo'/'address'")
        if len(text) > 4096 or len(signature) > 1024:
            raise MalformedEvidence("signature body fields are implausibly long")
        return cls(
            text=text,
            signature=signature,
            signing_algo=algo.lower(),
            signing_address=address,
            raw=bytes(body),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"raw_b64": base64.b64encode(self.raw).decode()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureRecord:
        try:
            return cls.from_json(base64.b64decode(data["raw_b64"], validate=True))
        except (KeyError, TypeError, binascii.Error) as exc:
            raise MalformedEvidence("stored signature record is unreadable") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class AttestationEvidence:
    """Everything fetched to verify one signer's attestation, exactly as received.

    ``collateral`` maps a quote's FMSPC (lower-case hex) to dcap-qvl ``QuoteCollateralV3`` JSON
    (``QuoteCollateralV3.to_json()`` form). ``nras_response`` is NRAS's answer to the report's
    ``nvidia_payload``, ``nras_jwks`` the JWKS body used to check it. ``None`` means "not fetched":
    the matching checks then stay ``not_checked`` and the verdict cannot be ``verified``.
    """

    report: bytes
    nonce: str  # 64 lower-case hex chars: the nonce we sent
    collateral: Mapping[str, str] = dataclasses.field(default_factory=dict)
    nras_response: bytes | None = None
    nras_jwks: bytes | None = None
    fetched_at: datetime | None = None
    #: why a piece is missing (e.g. NRAS unreachable), so the verdict can say so
    missing: Mapping[str, Reason] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def b64(b: bytes | None) -> str | None:
            return base64.b64encode(b).decode() if b is not None else None

        return {
            "report_b64": b64(self.report),
            "nonce": self.nonce,
            "collateral": dict(self.collateral),
            "nras_response_b64": b64(self.nras_response),
            "nras_jwks_b64": b64(self.nras_jwks),
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "missing": {k: v.value for k, v in self.missing.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttestationEvidence:
        def unb64(value: Any) -> bytes | None:
            return base64.b64decode(value, validate=True) if value is not None else None

        try:
            report = unb64(data["report_b64"])
            if report is None:
                raise MalformedEvidence("stored attestation evidence has no report")
            fetched = data.get("fetched_at")
            return cls(
                report=report,
                nonce=str(data["nonce"]),
                collateral={str(k): str(v) for k, v in dict(data.get("collateral") or {}).items()},
                nras_response=unb64(data.get("nras_response_b64")),
                nras_jwks=unb64(data.get("nras_jwks_b64")),
                fetched_at=datetime.fromisoformat(fetched) if fetched else None,
                missing={str(k): Reason(v) for k, v in dict(data.get("missing") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise MalformedEvidence("stored attestation evidence is unreadable") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureCheck:
    """Outcome of checking a signature record against our own hashes of the captured bytes."""

    checks: Mapping[str, CheckOutcome]  # signature, request_hash, response_hash
    reasons: tuple[Reason, ...]
    request_sha256: str
    response_sha256: str
    signed_text: str | None = None
    signature: str | None = None
    signing_algo: str | None = None
    #: recovered address (ecdsa) / verified public key (ed25519): lower-case hex without 0x
    signer: str | None = None
    hash_mode: str | None = None  # "bytes" | "json-normalized"
    served_model: str | None = None  # first field of a 3-part signed text
    #: every ``model`` the (signed) response body names, in order
    response_models: tuple[str, ...] = ()
    detail: str | None = None  # one human line on what failed; never secrets

    @property
    def passed(self) -> bool:
        """A signer was established and every check ran and passed (nothing else counts)."""
        return (
            self.signer is not None
            and not self.reasons
            and bool(self.checks)
            and all(o is CheckOutcome.PASS for o in self.checks.values())
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AttestationVerdict:
    """Outcome of verifying one attestation for one signer.

    Covers the checks signer_attested, report_data, nonce, quote, tcb, event_log, compose,
    measurements and gpu. ``valid_until`` is the earliest expiry among collateral and tokens: a
    cache must not reuse the verdict past it.
    """

    checks: Mapping[str, CheckOutcome]
    reasons: tuple[Reason, ...]
    summary: AttestationSummary | None = None
    valid_until: datetime | None = None
    detail: str | None = None
    #: how the served code was identified (``VerificationResult.code_identity``)
    code_identity: Mapping[str, Any] | None = None

    @property
    def passed(self) -> bool:
        """No reason against it and every check that ran passed (what a cache may keep)."""
        return not self.reasons and all(o is CheckOutcome.PASS for o in self.checks.values())
