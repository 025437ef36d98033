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
    "ACI_CHECKS",
    "CHECK_FAILURE_REASON",
    "FAILED_REASONS",
    "LEGACY_CHECKS",
    "PROTOCOL_CHECKS",
    "REQUIRED_CHECKS",
    "UNVERIFIABLE_REASONS",
    "AciSummary",
    "AttestationSummary",
    "Check",
    "CheckOutcome",
    "Reason",
    "Status",
    "UpstreamSummary",
    "VerificationResult",
    "required_checks",
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
    # failed, ACI (SPEC §6)
    KEYSET_DIGEST_MISMATCH = "KEYSET_DIGEST_MISMATCH"  # recomputed keyset digest differs
    KEYSET_EXPIRED = "KEYSET_EXPIRED"  # now (or served_at) >= keyset not_after
    KEY_CUSTODY_INVALID = "KEY_CUSTODY_INVALID"  # KMS chain bad, root not accepted, key uncovered
    RECEIPT_MISSING = "RECEIPT_MISSING"  # an ACI inference response without X-Receipt-Id
    RECEIPT_MISMATCH = "RECEIPT_MISMATCH"  # receipt id, chat id, endpoint or served_at window
    MODEL_MISMATCH = "MODEL_MISMATCH"  # the receipt names another model than we requested
    UPSTREAM_NOT_VERIFIED = "UPSTREAM_NOT_VERIFIED"  # the gateway did not verify the upstream
    SESSION_MISMATCH = "SESSION_MISMATCH"  # session id, evidence digest, window or claims
    # failed, ACI, finer codes added by this package (docs/protocol-aci.md)
    KEYSET_EXPIRY_IMPLAUSIBLE = "KEYSET_EXPIRY_IMPLAUSIBLE"  # not_after beyond the policy bound
    KEY_ROLE_REUSE = "KEY_ROLE_REUSE"  # one public key listed under two roles of the keyset
    RECEIPT_EVENT_LOG_INVALID = "RECEIPT_EVENT_LOG_INVALID"  # required receipt events missing
    # failed, legacy: the "model" report is an ACI gateway's legacy alias (binds no model node)
    ACI_ALIAS_REPORT = "ACI_ALIAS_REPORT"
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
    # unverifiable, ACI (SPEC §6)
    RECEIPT_UNAVAILABLE = "RECEIPT_UNAVAILABLE"  # the receipt could not be fetched
    UPSTREAM_REFUSED = "UPSTREAM_REFUSED"  # the gateway refused to forward (503/412 refusal)
    # unverifiable, ACI, finer: the policy needs the session record and it is not at hand
    SESSION_UNAVAILABLE = "SESSION_UNAVAILABLE"


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
        Reason.RECEIPT_UNAVAILABLE,
        Reason.UPSTREAM_REFUSED,
        Reason.SESSION_UNAVAILABLE,
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
    # ACI (SPEC §6)
    KEYSET = "keyset"  # digest recomputes, keys per role, not_after plausible and not passed
    KEY_CUSTODY = "key_custody"  # dstack KMS chains to an accepted root cover the receipt key
    RECEIPT = "receipt"  # receipt names this exchange: id, chat id, endpoint, model, served_at
    UPSTREAM = "upstream"  # the gateway verified the upstream, as the policy requires
    SESSION = "session"  # the upstream session record (only when the policy asks)


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
    "keyset": Reason.KEYSET_DIGEST_MISMATCH,
    "key_custody": Reason.KEY_CUSTODY_INVALID,
    "receipt": Reason.RECEIPT_MISMATCH,
    "upstream": Reason.UPSTREAM_NOT_VERIFIED,
    "session": Reason.SESSION_MISMATCH,
}

#: The checks of the per-node (legacy) protocol, in the order they run.
LEGACY_CHECKS: tuple[Check, ...] = (
    Check.SIGNATURE,
    Check.REQUEST_HASH,
    Check.RESPONSE_HASH,
    Check.SIGNER_ATTESTED,
    Check.REPORT_DATA,
    Check.NONCE,
    Check.QUOTE,
    Check.TCB,
    Check.EVENT_LOG,
    Check.COMPOSE,
    Check.MEASUREMENTS,
    Check.GPU,
)
#: The checks of the ACI protocol. No ``gpu``: the gateway TD has none; the upstream's GPUs are
#: vouched for by the gateway (``upstream``) and, on request, its session record (``session``).
ACI_CHECKS: tuple[Check, ...] = (
    Check.KEYSET,
    Check.REPORT_DATA,
    Check.NONCE,
    Check.QUOTE,
    Check.TCB,
    Check.EVENT_LOG,
    Check.COMPOSE,
    Check.MEASUREMENTS,
    Check.KEY_CUSTODY,
    Check.SIGNATURE,
    Check.SIGNER_ATTESTED,
    Check.RECEIPT,
    Check.REQUEST_HASH,
    Check.RESPONSE_HASH,
    Check.UPSTREAM,
    Check.SESSION,
)
PROTOCOL_CHECKS: Mapping[str, tuple[Check, ...]] = {"legacy": LEGACY_CHECKS, "aci": ACI_CHECKS}

#: Every check that must be ``pass`` for a legacy ``verified`` status. ``gpu`` is dropped from
#: this set only when the policy explicitly does not require GPU evidence.
REQUIRED_CHECKS: tuple[Check, ...] = LEGACY_CHECKS


def required_checks(
    protocol: str, *, require_gpu: bool = True, check_session: bool = False
) -> tuple[str, ...]:
    """The checks that must pass for ``verified`` under ``protocol`` (``"legacy"`` | ``"aci"``).

    Legacy: all of :data:`LEGACY_CHECKS`, ``gpu`` only when ``require_gpu``. ACI: all of
    :data:`ACI_CHECKS`, ``session`` only when ``check_session``.
    """
    if protocol == "legacy":
        return tuple(c.value for c in LEGACY_CHECKS if require_gpu or c is not Check.GPU)
    if protocol == "aci":
        return tuple(c.value for c in ACI_CHECKS if check_session or c is not Check.SESSION)
    raise ValueError(f"unknown protocol {protocol!r}")


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
class UpstreamSummary:
    """What the gateway's receipt (and, when fetched, the session) says about the upstream."""

    provider: str | None = None  # the session's ``upstream_name`` (or a failed event's)
    model_id: str | None = None
    result: str | None = None  # "verified" | "failed"
    required: bool | None = None
    session_id: str | None = None
    claims: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["claims"] = _plain(self.claims)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UpstreamSummary:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["claims"] = dict(values.get("claims") or {})
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class AciSummary:
    """The ACI facts of one verdict (SPEC §6): the gateway identity and the server's receipt."""

    receipt_id: str | None = None  # the server's ``rcpt-…`` (our store's id is the top-level one)
    keyset_digest: str | None = None
    app_id: str | None = None
    compose_hash: str | None = None
    os_image_hash: str | None = None
    source_commit: str | None = None
    kms_root: str | None = None
    served_at: int | None = None
    upstream: UpstreamSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["upstream"] = self.upstream.to_dict() if self.upstream else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AciSummary:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        upstream = values.get("upstream")
        values["upstream"] = UpstreamSummary.from_dict(upstream) if upstream else None
        return cls(**values)


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
    protocol: str = "legacy"  # "legacy" (per-node signatures) | "aci" (gateway receipts)
    signed_by: str | None = None  # "gateway" | "model-node" | None (nothing was signed)
    aci: AciSummary | None = None
    #: how the code that served was identified: {"kind": "pinned" | "registry" | "unpinned",
    #: "matched": [what matched, e.g. "kms_root", "app_id", "os_image"]}
    code_identity: Mapping[str, Any] | None = None
    #: what the verdict takes on trust rather than proves (legacy:
    #: ``"request_hash_reported_by_gateway"``); empty for ACI
    assumptions: tuple[str, ...] = ()
    #: the model the signed evidence says answered (legacy: the 3-part signed text's first field,
    #: else the response body's ``model``)
    served_model: str | None = None
    #: why this verdict's receipt could not be written to the store (then ``receipt_id`` is None);
    #: the verdict itself is unchanged: it is about the evidence, the store is bookkeeping
    receipt_error: str | None = None

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
        protocol: str = "legacy",
        **evidence: Any,
    ) -> VerificationResult:
        """Derive ``status`` from checks and reasons so that it can never contradict them.

        * any failed-class reason, or any required check that is ``fail`` → ``failed``
        * otherwise any reason, or any required check that is not ``pass`` → ``unverifiable``
        * otherwise ``verified``

        ``checks`` is completed with ``not_checked`` for every check of ``protocol``.
        """
        ordered = tuple(dict.fromkeys(Reason(r) for r in reasons))
        all_checks = {str(c): CheckOutcome.NOT_CHECKED for c in PROTOCOL_CHECKS[protocol]}
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
        return cls(status=status, reasons=ordered, checks=all_checks, protocol=protocol, **evidence)

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
            "protocol": self.protocol,
            "signed_by": self.signed_by,
            "aci": self.aci.to_dict() if self.aci else None,
            "code_identity": _plain(self.code_identity) if self.code_identity else None,
            "assumptions": list(self.assumptions),
            "served_model": self.served_model,
            "receipt_error": self.receipt_error,
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
            protocol=str(data.get("protocol") or "legacy"),
            signed_by=data.get("signed_by"),
            aci=AciSummary.from_dict(data["aci"]) if data.get("aci") else None,
            code_identity=dict(data["code_identity"]) if data.get("code_identity") else None,
            assumptions=tuple(str(a) for a in data.get("assumptions") or ()),
            served_model=data.get("served_model"),
            receipt_error=data.get("receipt_error"),
        )
