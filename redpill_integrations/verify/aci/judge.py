"""The one pure ACI judge: documents + our observations + policy + ``now`` → a verdict.

Used live (right after the exchange) and offline (re-verifying a stored receipt bundle with the
stored ``now``). Nothing here does I/O or reads a clock. Any exception of ours escaping the checks
becomes ``unverifiable``/``CHECK_NOT_RUN`` (logged), never a pass and never a crash of the caller.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import (
    AciSummary,
    AttestationSummary,
    CheckOutcome,
    Reason,
    UpstreamSummary,
    VerificationResult,
    required_checks,
)
from redpill_integrations.verify.aci.exchange import AciExchange
from redpill_integrations.verify.aci.identity import GatewayVerdict, verify_gateway
from redpill_integrations.verify.aci.models import (
    AciReceipt,
    AciReport,
    AciSession,
    parse_aci_report,
    parse_receipt,
    parse_session,
)
from redpill_integrations.verify.aci.receipt import check_receipt, upstream_event
from redpill_integrations.verify.aci.session import check_session, session_id_of
from redpill_integrations.verify.checklog import CheckLog

__all__ = ["judge_aci"]

logger = logging.getLogger("redpill_integrations")


def judge_aci(
    *,
    report: bytes | AciReport,
    nonce: str,
    collateral_json: str | None,
    exchange: AciExchange,
    receipt: bytes | AciReceipt | None,
    session: bytes | AciSession | None = None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    gateway: GatewayVerdict | None = None,
) -> VerificationResult:
    """The verdict for one ACI exchange (``docs/protocol-aci.md`` §7).

    ``report`` is the ``/v1/aci/attestation`` body fetched with ``nonce``; ``collateral_json`` the
    DCAP collateral for its quote (None: the quote check does not run → unverifiable);
    ``receipt`` the ``/v1/aci/receipts/{X-Receipt-Id}`` body (None: it could not be fetched);
    ``session`` the ``/v1/aci/sessions/{id}`` body named by the receipt (needed when the policy
    checks sessions or restricts providers). ``gateway`` may pass a :func:`verify_gateway` verdict
    already computed for this very report and nonce, to skip recomputing it.
    """
    base: dict[str, Any] = {
        "chat_id": exchange.chat_id,
        "model": exchange.model,
        "request_sha256": hashlib.sha256(exchange.request_body).hexdigest(),
        "response_sha256": hashlib.sha256(exchange.response_body).hexdigest(),
        "hash_mode": "bytes",
        "verified_at": now,
    }
    required = required_checks("aci", check_session=policy.check_session)
    try:
        return _judge(
            report, nonce, collateral_json, exchange, receipt, session, policy, trust, now,
            gateway, base, required,
        )  # fmt: skip
    except Exception:  # the one crash guard of the ACI judge
        logger.exception("ACI verification crashed; the verdict is unverifiable")
        return VerificationResult.build(
            checks={},
            reasons=[Reason.CHECK_NOT_RUN],
            required=required,
            protocol="aci",
            detail="internal error during ACI verification",
            **base,
        )


def _judge(
    report_in: bytes | AciReport,
    nonce: str,
    collateral_json: str | None,
    exchange: AciExchange,
    receipt_in: bytes | AciReceipt | None,
    session_in: bytes | AciSession | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    gateway: GatewayVerdict | None,
    base: dict[str, Any],
    required: tuple[str, ...],
) -> VerificationResult:
    log = CheckLog()
    if gateway is None:
        try:
            report = report_in if isinstance(report_in, AciReport) else parse_aci_report(report_in)
        except EvidenceError as exc:
            return _early(exc, "attestation report", base, required)
        gateway = verify_gateway(
            report,
            nonce=nonce,
            collateral_json=collateral_json,
            policy=policy,
            trust=trust,
            now=now,
        )
    log.absorb(gateway.checks, gateway.reasons, gateway.detail)
    receipt = _receipt(receipt_in, exchange, log)
    session = _session(session_in, receipt, policy, log)
    upstream: UpstreamSummary | None = None
    if receipt is not None:
        upstream = check_receipt(
            receipt,
            keyset=gateway.report.keyset,
            keyset_digest=gateway.keyset_digest,
            serving=gateway.report.serving,
            exchange=exchange,
            session=session,
            policy=policy,
            log=log,
        )
        if policy.check_session and not exchange.refused:  # a refusal names no session
            _check_session(receipt, session, policy, log)
    if policy.deep_audit:  # asked for and not built: never silently a pass
        log.reasons.append(Reason.CHECK_NOT_RUN)
        log.details.append("deep_audit: re-verifying upstream evidence is not implemented")
    key = gateway.report.keyset.receipt_key(receipt.key_id) if receipt else None
    signature_ok = log.checks.get("signature") is CheckOutcome.PASS
    return VerificationResult.build(
        checks=log.checks,
        reasons=log.reasons,
        required=required,
        protocol="aci",
        signed_by="gateway" if receipt is not None and signature_ok else None,
        signature=receipt.signature.hex() if receipt else None,
        signing_algo=key.algo if key else None,
        signer=key.public_key if key else None,
        attestation=_attestation(gateway, key.public_key if key else "", now),
        aci=_aci_summary(gateway, receipt, upstream),
        code_identity=gateway.code_identity,
        detail=log.detail,
        **base,
    )


def _early(
    exc: EvidenceError, what: str, base: dict[str, Any], required: tuple[str, ...]
) -> VerificationResult:
    return VerificationResult.build(
        checks={},
        reasons=[exc.reason or Reason.MALFORMED_RESPONSE],
        required=required,
        protocol="aci",
        detail=f"{what}: {str(exc)[:300]}",
        **base,
    )


def _receipt(
    receipt_in: bytes | AciReceipt | None, exchange: AciExchange, log: CheckLog
) -> AciReceipt | None:
    if exchange.receipt_id is None:
        log.fail("receipt", Reason.RECEIPT_MISSING, "the response carries no X-Receipt-Id")
        return None
    if receipt_in is None:
        log.skip("receipt", Reason.RECEIPT_UNAVAILABLE, "the receipt could not be fetched")
        return None
    if isinstance(receipt_in, AciReceipt):
        return receipt_in
    try:
        return parse_receipt(receipt_in)
    except EvidenceError as exc:
        log.skip("receipt", exc.reason or Reason.MALFORMED_RESPONSE, f"unreadable: {exc}")
        return None


def _session(
    session_in: bytes | AciSession | None,
    receipt: AciReceipt | None,
    policy: VerificationPolicy,
    log: CheckLog,
) -> AciSession | None:
    """The parsed session, only when it is the record the receipt names (else None)."""
    if session_in is None:
        return None
    try:
        session = session_in if isinstance(session_in, AciSession) else parse_session(session_in)
    except EvidenceError as exc:
        if policy.check_session:
            log.skip("session", exc.reason or Reason.MALFORMED_RESPONSE, f"unreadable: {exc}")
        return None
    if receipt is None:
        return None  # nothing to tie it to
    event = upstream_event(receipt)
    if event is None or session_id_of(session) != event.get("session_id"):
        if policy.check_session:
            log.fail("session", Reason.SESSION_MISMATCH, "not the session the receipt names")
        return None  # never used for anything else
    return session


def _check_session(
    receipt: AciReceipt, session: AciSession | None, policy: VerificationPolicy, log: CheckLog
) -> None:
    if "session" in log.checks:  # already judged: unreadable or not the named record
        return
    event = upstream_event(receipt)
    session_id = event.get("session_id") if event else None
    if not isinstance(session_id, str):
        log.fail("session", Reason.SESSION_MISMATCH, "the receipt names no upstream session")
        return
    if session is None:
        log.skip("session", Reason.SESSION_UNAVAILABLE, "the session record is not at hand")
        return
    problem = check_session(
        session,
        session_id=session_id,
        served_at=receipt.served_at,
        required_claims=policy.required_session_claims,
    )
    if problem is None:
        log.ok("session")
    else:
        log.fail("session", Reason.SESSION_MISMATCH, problem)


def _attestation(gateway: GatewayVerdict, signer: str, now: datetime) -> AttestationSummary:
    td, identity = gateway.td, gateway.identity
    not_after = datetime.fromtimestamp(gateway.report.keyset.not_after, tz=UTC)
    valid = [t for t in (gateway.valid_until, not_after) if t is not None]
    return AttestationSummary(
        nonce=gateway.nonce,
        signing_address=signer,
        signing_algo="ed25519",
        report_shape="aci",
        tcb_status=gateway.tcb_status,
        advisory_ids=gateway.advisory_ids,
        mrtd=td.mrtd.hex() if td else None,
        rtmr0=td.rtmrs[0].hex() if td else None,
        rtmr1=td.rtmrs[1].hex() if td else None,
        rtmr2=td.rtmrs[2].hex() if td else None,
        rtmr3=td.rtmrs[3].hex() if td else None,
        compose_hash=identity.compose_hash if identity else None,
        app_id=identity.app_id if identity else None,
        os_image_hash=identity.os_image_hash if identity else None,
        verified_at=now,
        valid_until=min(valid),
    )


def _aci_summary(
    gateway: GatewayVerdict, receipt: AciReceipt | None, upstream: UpstreamSummary | None
) -> AciSummary:
    identity = gateway.identity
    return AciSummary(
        receipt_id=receipt.receipt_id if receipt else None,
        keyset_digest=gateway.keyset_digest,
        app_id=identity.app_id if identity else None,
        compose_hash=identity.compose_hash if identity else None,
        os_image_hash=identity.os_image_hash if identity else None,
        source_commit=gateway.source_commit,
        kms_root=gateway.kms_root,
        served_at=receipt.served_at if receipt else None,
        upstream=upstream,
    )
