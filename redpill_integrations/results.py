"""Verdicts: :class:`VerificationResult`, its stable reason codes and check names (SPEC §3).

A result is ``verified`` only when every required check ran and passed. Checks that did not run are
``not_checked`` and never count as a pass. Reason codes are stable: new ones may be added, none is
ever renamed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "CHECK_FAILURE_REASON",
    "FAILED_REASONS",
    "REQUIRED_CHECKS",
    "UNVERIFIABLE_REASONS",
    "AttestationSummary",
    "Check",
    "CheckOutcome",
    "Reason",
    "Status",
    "VerificationResult",
]


class Status(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"  # the evidence contradicts the claim
    UNVERIFIABLE = "unverifiable"  # the verification could not be completed


class Reason(StrEnum):
    # failed: the evidence contradicts the claim
    REQUEST_HASH_MISMATCH = "REQUEST_HASH_MISMATCH"
    RESPONSE_HASH_MISMATCH = "RESPONSE_HASH_MISMATCH"
    SIGNED_TEXT_MALFORMED = "SIGNED_TEXT_MALFORMED"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    SIGNER_NOT_ATTESTED = "SIGNER_NOT_ATTESTED"
    REPORT_DATA_MISMATCH = "REPORT_DATA_MISMATCH"
    NONCE_MISMATCH = "NONCE_MISMATCH"
    QUOTE_INVALID = "QUOTE_INVALID"
    TCB_STATUS_REJECTED = "TCB_STATUS_REJECTED"
    EVENT_LOG_MISMATCH = "EVENT_LOG_MISMATCH"
    COMPOSE_MISMATCH = "COMPOSE_MISMATCH"
    MEASUREMENT_NOT_ALLOWED = "MEASUREMENT_NOT_ALLOWED"
    GPU_EVIDENCE_MISSING = "GPU_EVIDENCE_MISSING"
    GPU_TOKEN_INVALID = "GPU_TOKEN_INVALID"  # noqa: S105 (a reason code, not a secret)
    GPU_NONCE_MISMATCH = "GPU_NONCE_MISMATCH"
    GPU_CLAIMS_REJECTED = "GPU_CLAIMS_REJECTED"
    UNSUPPORTED_PROTOCOL = "UNSUPPORTED_PROTOCOL"
    DUPLICATE_JSON_KEY = "DUPLICATE_JSON_KEY"
    # unverifiable: the verification could not be completed
    SIGNATURE_UNAVAILABLE = "SIGNATURE_UNAVAILABLE"
    SIGNATURE_EXPIRED = "SIGNATURE_EXPIRED"
    STREAM_INCOMPLETE = "STREAM_INCOMPLETE"
    MALFORMED_RESPONSE = "MALFORMED_RESPONSE"
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
    TIMEOUT = "TIMEOUT"
    RATE_LIMITED = "RATE_LIMITED"
    UPSTREAM_HTTP_ERROR = "UPSTREAM_HTTP_ERROR"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    MODEL_NOT_TEE = "MODEL_NOT_TEE"
    CHECK_NOT_RUN = "CHECK_NOT_RUN"  # added: a required check never ran and nothing said why


UNVERIFIABLE_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.SIGNATURE_UNAVAILABLE,
        Reason.SIGNATURE_EXPIRED,
        Reason.STREAM_INCOMPLETE,
        Reason.MALFORMED_RESPONSE,
        Reason.RESPONSE_TOO_LARGE,
        Reason.TIMEOUT,
        Reason.RATE_LIMITED,
        Reason.UPSTREAM_HTTP_ERROR,
        Reason.DEPENDENCY_UNAVAILABLE,
        Reason.MODEL_NOT_TEE,
        Reason.CHECK_NOT_RUN,
    }
)
FAILED_REASONS: frozenset[Reason] = frozenset(Reason) - UNVERIFIABLE_REASONS


class CheckOutcome(StrEnum):
    PASS = "pass"  # noqa: S105 (a check outcome, not a secret)
    FAIL = "fail"
    NOT_CHECKED = "not_checked"


class Check(StrEnum):
    """Names of the verification steps, in the order they run."""

    SIGNATURE = "signature"
    REQUEST_HASH = "request_hash"
    RESPONSE_HASH = "response_hash"
    SIGNER_ATTESTED = "signer_attested"
    REPORT_DATA = "report_data"
    NONCE = "nonce"
    QUOTE = "quote"
    TCB = "tcb"
    EVENT_LOG = "event_log"
    COMPOSE = "compose"
    MEASUREMENTS = "measurements"  # policy allowlists; passes trivially only when none is set
    GPU = "gpu"


#: The reason a failed check stands for when the code that failed it gave none.
CHECK_FAILURE_REASON: Mapping[str, Reason] = {
    "signature": Reason.SIGNATURE_INVALID,
    "request_hash": Reason.REQUEST_HASH_MISMATCH,
    "response_hash": Reason.RESPONSE_HASH_MISMATCH,
    "signer_attested": Reason.SIGNER_NOT_ATTESTED,
    "report_data": Reason.REPORT_DATA_MISMATCH,
    "nonce": Reason.NONCE_MISMATCH,
    "quote": Reason.QUOTE_INVALID,
    "tcb": Reason.TCB_STATUS_REJECTED,
    "event_log": Reason.EVENT_LOG_MISMATCH,
    "compose": Reason.COMPOSE_MISMATCH,
    "measurements": Reason.MEASUREMENT_NOT_ALLOWED,
    "gpu": Reason.GPU_CLAIMS_REJECTED,
}

#: Every check that must be ``pass`` for a ``verified`` status. ``gpu`` is dropped from this set
#: only when the policy explicitly does not require GPU evidence.
REQUIRED_CHECKS: tuple[Check, ...] = tuple(Check)


@dataclasses.dataclass(frozen=True, slots=True)
class AttestationSummary:
    """What the attestation proved, kept as evidence in every result and receipt."""

    nonce: str
    signing_address: str
    signing_algo: str
    report_shape: str  # "flat" | "two-layer"
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    mrtd: str | None = None
    rtmr0: str | None = None
    rtmr1: str | None = None
    rtmr2: str | None = None
    rtmr3: str | None = None
    compose_hash: str | None = None
    app_id: str | None = None
    os_image_hash: str | None = None
    gpu_count: int = 0
    gpu_claims: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    verified_at: datetime | None = None
    valid_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict: its deepcopy machinery dominated the
        # per-call cost of attaching verdicts (benchmarks/RESULTS.md); _plain still gives every
        # caller its own nested containers.
        d = {f.name: getattr(self, f.name) for f in _SUMMARY_FIELDS}
        d["advisory_ids"] = list(self.advisory_ids)
        d["gpu_claims"] = _plain(self.gpu_claims)
        for key in ("verified_at", "valid_until"):
            value = getattr(self, key)
            d[key] = value.isoformat() if value is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttestationSummary:
        values = dict(data)
        values["advisory_ids"] = tuple(values.get("advisory_ids") or ())
        values["gpu_claims"] = dict(values.get("gpu_claims") or {})
        for key in ("verified_at", "valid_until"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


_SUMMARY_FIELDS = dataclasses.fields(AttestationSummary)


def _plain(value: Any) -> Any:
    """A fresh copy of JSON-like data (mappings, lists, tuples; other values as they are)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class VerificationResult:
    """The verdict for one exchange (SPEC §3). Build it with :meth:`build` to keep it consistent."""

    status: Status
    reasons: tuple[Reason, ...]
    checks: Mapping[str, CheckOutcome]
    chat_id: str | None = None
    model: str | None = None
    request_sha256: str | None = None
    response_sha256: str | None = None
    signed_text: str | None = None
    signature: str | None = None
    signing_algo: str | None = None
    signer: str | None = None
    hash_mode: str | None = None  # "bytes" | "json-normalized"
    attestation: AttestationSummary | None = None
    verified_at: datetime | None = None
    receipt_id: str | None = None
    cached: bool = False  # True when served from a LangChain/LlamaIndex cache, not freshly verified
    detail: str | None = None  # one human line; never contains secrets

    @property
    def verified(self) -> bool:
        return self.status is Status.VERIFIED

    @classmethod
    def build(
        cls,
        *,
        checks: Mapping[str, CheckOutcome],
        reasons: Iterable[Reason],
        required: Iterable[str] = tuple(c.value for c in REQUIRED_CHECKS),
        **evidence: Any,
    ) -> VerificationResult:
        """Derive ``status`` from checks and reasons so that it can never contradict them.

        * any failed-class reason, or any required check that is ``fail`` → ``failed``
        * otherwise any reason, or any required check that is not ``pass`` → ``unverifiable``
        * otherwise ``verified``
        """
        ordered = tuple(dict.fromkeys(Reason(r) for r in reasons))
        all_checks = {str(c): CheckOutcome.NOT_CHECKED for c in Check}
        all_checks.update({str(k): CheckOutcome(v) for k, v in checks.items()})
        required = tuple(required)
        if any(r in FAILED_REASONS for r in ordered) or any(
            all_checks.get(name) is CheckOutcome.FAIL for name in required
        ):
            status = Status.FAILED
        elif ordered or any(all_checks.get(name) is not CheckOutcome.PASS for name in required):
            status = Status.UNVERIFIABLE
        else:
            status = Status.VERIFIED
        if status is not Status.VERIFIED and not ordered:
            # A non-verified result always says why, even when the caller forgot to.
            failed = [n for n in required if all_checks.get(n) is CheckOutcome.FAIL]
            ordered = (
                tuple(CHECK_FAILURE_REASON.get(n, Reason.CHECK_NOT_RUN) for n in failed)
                if failed
                else (Reason.CHECK_NOT_RUN,)
            )
        return cls(status=status, reasons=ordered, checks=all_checks, **evidence)

    @classmethod
    def unverifiable(cls, reason: Reason, **evidence: Any) -> VerificationResult:
        """A result for an exchange whose verification could not start or finish."""
        return cls.build(checks={}, reasons=[reason], **evidence)

    def with_updates(self, **changes: Any) -> VerificationResult:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reasons": [r.value for r in self.reasons],
            "checks": {k: CheckOutcome(v).value for k, v in self.checks.items()},
            "chat_id": self.chat_id,
            "model": self.model,
            "request_sha256": self.request_sha256,
            "response_sha256": self.response_sha256,
            "signed_text": self.signed_text,
            "signature": self.signature,
            "signing_algo": self.signing_algo,
            "signer": self.signer,
            "hash_mode": self.hash_mode,
            "attestation": self.attestation.to_dict() if self.attestation else None,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "receipt_id": self.receipt_id,
            "cached": self.cached,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerificationResult:
        att = data.get("attestation")
        verified_at = data.get("verified_at")
        return cls(
            status=Status(data["status"]),
            reasons=tuple(Reason(r) for r in data.get("reasons", ())),
            checks={k: CheckOutcome(v) for k, v in data.get("checks", {}).items()},
            chat_id=data.get("chat_id"),
            model=data.get("model"),
            request_sha256=data.get("request_sha256"),
            response_sha256=data.get("response_sha256"),
            signed_text=data.get("signed_text"),
            signature=data.get("signature"),
            signing_algo=data.get("signing_algo"),
            signer=data.get("signer"),
            hash_mode=data.get("hash_mode"),
            attestation=AttestationSummary.from_dict(att) if att else None,
            verified_at=datetime.fromisoformat(verified_at) if verified_at else None,
            receipt_id=data.get("receipt_id"),
            cached=bool(data.get("cached", False)),
            detail=data.get("detail"),
        )
