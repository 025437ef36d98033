"""What one ACI verification fetched, kept for offline re-verification, and the one function that
judges it (live right after the exchange, offline from a stored receipt; ``docs/aci-wire.md`` §4).

:class:`AciEvidence` holds the documents exactly as received (attestation document bytes, our
nonce, the DCAP collateral JSON, the server's receipt bytes, the session bytes when fetched), the
facts of the exchange that are not in its bodies (the ``X-Receipt-Id`` and ``X-ACI-Keyset-Digest``
headers, the endpoint, the HTTP status, whether the ``aci_verified`` constraint was sent) and why
a document is missing. :func:`judge_evidence` rebuilds the :class:`AciExchange` from it plus the
bodies and the capture's times, and runs :func:`verify_gateway` (at the instant the identity was
attested) and :func:`judge_aci`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import Reason, VerificationResult, required_checks
from redpill_integrations.verify.aci.exchange import AciExchange
from redpill_integrations.verify.aci.identity import GatewayVerdict, verify_gateway
from redpill_integrations.verify.aci.judge import judge_aci
from redpill_integrations.verify.aci.models import parse_aci_report
from redpill_integrations.verify.encoding import sha256_hex

__all__ = ["AciEvidence", "judge_evidence"]


def _b64(b: bytes | None) -> str | None:
    return base64.b64encode(b).decode() if b is not None else None


def _unb64(v: Any) -> bytes | None:
    return base64.b64decode(v, validate=True) if v is not None else None


def _dt(v: Any) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


def _reason(v: Any) -> Reason | None:
    return Reason(v) if v else None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AciEvidence:
    """Everything an ACI verdict was computed from, besides the request/response bodies."""

    endpoint: str
    status_code: int
    receipt_id: str | None  # the X-Receipt-Id header
    keyset_digest_header: str | None  # the X-ACI-Keyset-Digest header (a hint)
    sent_aci_constraint: bool
    report: bytes | None = None  # /v1/aci/attestation body as received
    nonce: str | None = None
    collateral_json: str | None = None
    attested_at: datetime | None = None
    attestation_fetch_reason: Reason | None = None
    receipt: bytes | None = None  # /v1/aci/receipts/{id} body as received
    receipt_attempts: int = 0
    receipt_fetch_reason: Reason | None = None
    session: bytes | None = None  # /v1/aci/sessions/{id} body as received

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "status_code": self.status_code,
            "receipt_id": self.receipt_id,
            "keyset_digest_header": self.keyset_digest_header,
            "sent_aci_constraint": self.sent_aci_constraint,
            "report_b64": _b64(self.report),
            "nonce": self.nonce,
            "collateral_json": self.collateral_json,
            "attested_at": self.attested_at.isoformat() if self.attested_at else None,
            "attestation_fetch_reason": (
                self.attestation_fetch_reason.value if self.attestation_fetch_reason else None
            ),
            "receipt_b64": _b64(self.receipt),
            "receipt_attempts": self.receipt_attempts,
            "receipt_fetch_reason": (
                self.receipt_fetch_reason.value if self.receipt_fetch_reason else None
            ),
            "session_b64": _b64(self.session),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AciEvidence:
        """Raises ``KeyError``/``TypeError``/``ValueError``/``binascii.Error`` on bad input."""
        receipt_id, header = data.get("receipt_id"), data.get("keyset_digest_header")
        nonce, collateral = data.get("nonce"), data.get("collateral_json")
        for value in (receipt_id, header, nonce, collateral):
            if value is not None and not isinstance(value, str):
                raise TypeError("ACI evidence field is not a string")
        return cls(
            endpoint=str(data["endpoint"]),
            status_code=int(data["status_code"]),
            receipt_id=receipt_id,
            keyset_digest_header=header,
            sent_aci_constraint=bool(data["sent_aci_constraint"]),
            report=_unb64(data.get("report_b64")),
            nonce=nonce,
            collateral_json=collateral,
            attested_at=_dt(data.get("attested_at")),
            attestation_fetch_reason=_reason(data.get("attestation_fetch_reason")),
            receipt=_unb64(data.get("receipt_b64")),
            receipt_attempts=int(data.get("receipt_attempts", 0)),
            receipt_fetch_reason=_reason(data.get("receipt_fetch_reason")),
            session=_unb64(data.get("session_b64")),
        )


def judge_evidence(
    evidence: AciEvidence,
    *,
    request_body: bytes,
    response_body: bytes,
    chat_id: str | None,
    model: str | None,
    started_at: datetime,
    finished_at: datetime,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    attested_at: datetime | None = None,
    gateway: GatewayVerdict | None = None,
) -> VerificationResult:
    """The verdict on one ACI exchange from its kept evidence.

    The gateway identity is judged at ``attested_at`` (default: ``evidence.attested_at``; it may
    predate the exchange when it came from the cache), everything else at ``now``; ``gateway`` may
    pass a verdict already computed for this very report and nonce. No report → unverifiable with
    the reason it could not be fetched. A receipt that could not be fetched for a reason other than
    its absence (``RATE_LIMITED``, ``TIMEOUT``…) names that reason instead of
    ``RECEIPT_UNAVAILABLE``.
    """
    exchange = AciExchange(
        request_body=request_body,
        response_body=response_body,
        receipt_id=evidence.receipt_id,
        chat_id=chat_id,
        endpoint=evidence.endpoint,
        model=model,
        started_at=started_at,
        finished_at=finished_at,
        sent_aci_constraint=evidence.sent_aci_constraint,
        status_code=evidence.status_code,
    )
    if evidence.report is None or evidence.nonce is None:
        reason = evidence.attestation_fetch_reason or Reason.CHECK_NOT_RUN
        return VerificationResult.build(
            checks={},
            reasons=[reason],
            required=required_checks("aci", check_session=policy.check_session),
            protocol="aci",
            chat_id=chat_id,
            model=model,
            request_sha256=sha256_hex(request_body),
            response_sha256=sha256_hex(response_body),
            hash_mode="bytes",
            verified_at=now,
            detail="the gateway's attestation could not be obtained",
        )
    if gateway is None:
        try:
            report = parse_aci_report(evidence.report)
        except EvidenceError:
            pass  # judge_aci parses it again and names the reason
        else:
            gateway = verify_gateway(
                report,
                nonce=evidence.nonce,
                collateral_json=evidence.collateral_json,
                policy=policy,
                trust=trust,
                now=attested_at or evidence.attested_at or now,
            )
    result = judge_aci(
        report=evidence.report,
        nonce=evidence.nonce,
        collateral_json=evidence.collateral_json,
        exchange=exchange,
        receipt=evidence.receipt,
        session=evidence.session,
        policy=policy,
        trust=trust,
        now=now,
        gateway=gateway,
    )
    fetch_reason = evidence.receipt_fetch_reason
    if fetch_reason is not None and fetch_reason is not Reason.RECEIPT_UNAVAILABLE:
        reasons = tuple(
            fetch_reason if r is Reason.RECEIPT_UNAVAILABLE else r for r in result.reasons
        )
        result = result.with_updates(reasons=tuple(dict.fromkeys(reasons)))
    return result
