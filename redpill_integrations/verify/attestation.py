"""Verify one signer's attestation evidence into an :class:`AttestationVerdict`.

Checks, in order: ``signer_attested`` (a node of the report has the signer's key), ``nonce`` (the
report echoes our nonce), ``report_data`` (the quote binds key and nonce), ``quote`` (DCAP chain via
dcap-qvl with the collateral for the quote's FMSPC), ``tcb`` (status accepted by the policy),
``event_log`` (RTMR replay, runtime digests), ``compose`` (app compose, compose hash, app id,
mr_config_id), ``measurements`` (policy allowlists) and ``gpu`` (NVIDIA payload and NRAS tokens).

Missing pieces: ``AttestationEvidence.missing`` may say why something was not fetched, under the
keys :data:`MISSING_COLLATERAL` (or ``"collateral:<fmspc>"``), :data:`MISSING_NRAS` and
:data:`MISSING_JWKS`; the matching check is then ``not_checked`` with that reason (unverifiable).

Two-layer reports: the *model* node must bind the signer and is verified in full. The gateway is
verified too (nonce, report_data, event log, compose, and its quote when collateral for its FMSPC is
present) under the extra, informational check ``gateway``: a gateway contradiction adds its failure
reason (so the result fails), while a gateway quote that could not be checked only leaves
``gateway`` at ``not_checked`` (it does not sign responses, so it is not required).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from redpill_integrations.errors import EvidenceError, MalformedEvidence
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import (
    FAILED_REASONS,
    AttestationSummary,
    CheckOutcome,
    Reason,
)
from redpill_integrations.verify.checklog import CheckLog, judge_quote
from redpill_integrations.verify.code_identity import judge_code
from redpill_integrations.verify.encoding import norm_hex
from redpill_integrations.verify.eventlog import AppIdentity, check_compose, check_event_log
from redpill_integrations.verify.gpu import (
    GpuVerification,
    payload_gpu_count,
    payload_nonce,
    verify_nras,
)
from redpill_integrations.verify.models import AttestationEvidence, AttestationVerdict
from redpill_integrations.verify.report import AttestationReport, NodeAttestation, parse_report
from redpill_integrations.verify.tdx import (
    QuoteVerification,
    TdFields,
    expected_report_data,
    parse_td_quote,
    quote_fmspc,
    verify_quote,
)

__all__ = [
    "MISSING_COLLATERAL",
    "MISSING_JWKS",
    "MISSING_NRAS",
    "verify_attestation",
]

logger = logging.getLogger("redpill_integrations")

MISSING_COLLATERAL = "collateral"
MISSING_NRAS = "nras"
MISSING_JWKS = "nras_jwks"

_PASS, _FAIL, _SKIP = CheckOutcome.PASS, CheckOutcome.FAIL, CheckOutcome.NOT_CHECKED


class _Log(CheckLog):
    """The shared check log, able to hand its results over as an :class:`AttestationVerdict`."""

    def verdict(
        self,
        summary: AttestationSummary | None = None,
        valid_until: datetime | None = None,
        code_identity: dict[str, Any] | None = None,
    ) -> AttestationVerdict:
        return AttestationVerdict(
            checks=dict(self.checks),
            reasons=tuple(self.reasons),
            summary=summary,
            valid_until=valid_until,
            detail="; ".join(self.details)[:2000] or None,
            code_identity=code_identity,
        )


@dataclasses.dataclass(slots=True)
class _NodeFacts:
    td: TdFields | None = None
    quote: QuoteVerification | None = None
    identity: AppIdentity | None = None  # only when the event log replayed


def verify_attestation(
    evidence: AttestationEvidence,
    *,
    signer: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
) -> AttestationVerdict:
    """Never raises for bad evidence: every problem becomes a reason code.

    A bug of ours does raise (so tests and fuzzers see it); callers go through
    :func:`redpill_integrations.verify.judgement.judge_attestation`, whose guard turns it into
    ``CHECK_NOT_RUN``.
    """
    return _verify(evidence, signer=signer, policy=policy, trust=trust, now=now)


def _verify(
    evidence: AttestationEvidence,
    *,
    signer: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
) -> AttestationVerdict:
    log = _Log()
    try:
        nonce = norm_hex(evidence.nonce, what="nonce", nbytes=32)
    except MalformedEvidence:
        log.fail("nonce", Reason.NONCE_MISMATCH, "the nonce we sent is not 32 bytes of hex")
        return log.verdict()
    try:
        report = parse_report(evidence.report)
    except EvidenceError as exc:
        log.reasons.append(exc.reason or Reason.MALFORMED_RESPONSE)
        log.details.append(f"report: {exc}")
        return log.verdict()

    node = _pick_node(report, signer, log)
    if node is None:
        return log.verdict()
    facts = _verify_node(node, nonce, evidence, policy, trust, now, log)
    code_identity = _check_measurements(facts, policy, trust, log)
    gpu = _check_gpu(node, nonce, evidence, policy, trust, now, log)
    if report.gateway is not None:
        _check_gateway(report.gateway, nonce, evidence, policy, trust, now, log)

    expiries = [
        t
        for t in (
            facts.quote.valid_until if facts.quote else None,
            gpu.valid_until if gpu else None,
        )
        if t is not None
    ]
    valid_until = min(expiries) if expiries else None
    td, qv, ident = facts.td, facts.quote, facts.identity
    summary = AttestationSummary(
        nonce=nonce,
        signing_address=node.signing_address,
        signing_algo=node.signing_algo,
        report_shape=report.shape,
        tcb_status=qv.status if qv else None,
        advisory_ids=qv.advisory_ids if qv else (),
        mrtd=td.mrtd.hex() if td else None,
        rtmr0=td.rtmrs[0].hex() if td else None,
        rtmr1=td.rtmrs[1].hex() if td else None,
        rtmr2=td.rtmrs[2].hex() if td else None,
        rtmr3=td.rtmrs[3].hex() if td else None,
        compose_hash=ident.compose_hash if ident else None,
        app_id=ident.app_id if ident else None,
        os_image_hash=ident.os_image_hash if ident else None,
        gpu_count=gpu.gpu_count if gpu else 0,
        gpu_claims=gpu.claims if gpu else {},
        verified_at=now,
        valid_until=valid_until,
    )
    return log.verdict(summary=summary, valid_until=valid_until, code_identity=code_identity)


def _pick_node(report: AttestationReport, signer: str | None, log: _Log) -> NodeAttestation | None:
    if signer is None:
        # No verified signer: still verify a lone node so the evidence is recorded, but the
        # binding to the (unknown) signer stays unproven.
        log.skip("signer_attested", detail="no verified signer to look for")
        return report.nodes[0] if len(report.nodes) == 1 else None
    node = report.node_for(signer)
    if node is None:
        log.fail(
            "signer_attested",
            Reason.SIGNER_NOT_ATTESTED,
            "no node of the report has the signer's key",
        )
    else:
        log.ok("signer_attested")
    return node


def _missing(evidence: AttestationEvidence, *keys: str) -> Reason | None:
    for key in keys:
        if key in evidence.missing:
            return evidence.missing[key]
    return None


def _verify_node(
    node: NodeAttestation,
    nonce: str,
    evidence: AttestationEvidence,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    log: _Log,
) -> _NodeFacts:
    facts = _NodeFacts()
    if node.request_nonce == nonce:
        log.ok("nonce")
    else:
        log.fail("nonce", Reason.NONCE_MISMATCH, "the report does not echo our nonce")

    try:
        facts.td = parse_td_quote(node.intel_quote)
        fmspc = quote_fmspc(node.intel_quote)
    except MalformedEvidence as exc:
        log.fail("quote", Reason.QUOTE_INVALID, str(exc))
        for name in ("report_data", "tcb", "event_log", "compose"):
            log.skip(name)
        return facts

    if facts.td.report_data == expected_report_data(node, bytes.fromhex(nonce)):
        log.ok("report_data")
    else:
        log.fail(
            "report_data",
            Reason.REPORT_DATA_MISMATCH,
            "quote report_data does not bind the signing key and our nonce",
        )

    collateral = evidence.collateral.get(fmspc)
    if collateral is None:
        why = _missing(evidence, f"{MISSING_COLLATERAL}:{fmspc}", MISSING_COLLATERAL)
        log.skip("quote", why or Reason.DEPENDENCY_UNAVAILABLE, f"no collateral for FMSPC {fmspc}")
        log.skip("tcb")
    else:
        facts.quote = verify_quote(
            node.intel_quote, collateral, root_ca_der=trust.intel_root_ca_der, now=now
        )
        judge_quote(facts.quote, policy, log)

    problem, identity = check_event_log(node.event_log, facts.td.rtmrs)
    if problem is not None:
        log.fail("event_log", Reason.EVENT_LOG_MISMATCH, problem)
        log.skip("compose")
        return facts
    log.ok("event_log")
    facts.identity = identity
    problem = check_compose(identity, node.info, facts.td.mr_config_id)
    if problem is None:
        log.ok("compose")
    else:
        log.fail("compose", Reason.COMPOSE_MISMATCH, problem)
    return facts


def _check_measurements(
    facts: _NodeFacts, policy: VerificationPolicy, trust: TrustAnchors, log: _Log
) -> dict[str, Any] | None:
    """The policy allowlists, then the code identity (:mod:`.code_identity`)."""
    judged = judge_code(facts.td, facts.identity, policy, trust)
    if judged.outcome is CheckOutcome.PASS:
        log.ok("measurements")
    elif judged.outcome is CheckOutcome.FAIL:
        log.fail("measurements", Reason.MEASUREMENT_NOT_ALLOWED, judged.detail or "")
    else:
        log.skip("measurements", detail=judged.detail)
    return judged.identity


def _check_gpu(
    node: NodeAttestation,
    nonce: str,
    evidence: AttestationEvidence,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    log: _Log,
) -> GpuVerification | None:
    if not policy.require_gpu:
        log.skip("gpu", detail="GPU evidence not required by the policy")
        return None
    if node.nvidia_payload is None:
        log.fail("gpu", Reason.GPU_EVIDENCE_MISSING, "the report carries no nvidia_payload")
        return None
    try:
        claimed = payload_nonce(node.nvidia_payload)
        count = payload_gpu_count(node.nvidia_payload)
    except EvidenceError as exc:
        log.fail("gpu", Reason.GPU_EVIDENCE_MISSING, f"nvidia_payload unusable: {exc}")
        return None
    if claimed != nonce:
        log.fail("gpu", Reason.GPU_NONCE_MISMATCH, "nvidia_payload.nonce is not our nonce")
        return None
    if count == 0:
        log.fail("gpu", Reason.GPU_EVIDENCE_MISSING, "nvidia_payload lists no GPU evidence")
        return None
    for piece, key in ((evidence.nras_response, MISSING_NRAS), (evidence.nras_jwks, MISSING_JWKS)):
        if piece is None:
            why = _missing(evidence, key, MISSING_NRAS)
            if why is None:
                log.fail("gpu", Reason.GPU_EVIDENCE_MISSING, f"no {key} evidence")
            else:
                log.skip("gpu", why, f"{key} could not be fetched")
            return None
    assert evidence.nras_response is not None and evidence.nras_jwks is not None
    result = verify_nras(
        evidence.nras_response,
        evidence.nras_jwks,
        nonce=nonce,
        issuer=trust.nras_issuer,
        now=now,
        ca_certs_der=trust.nras_ca_certs_der,
        expected_gpus=count,
    )
    if result.reason is None:
        log.ok("gpu")
    else:
        log.fail("gpu", result.reason, result.detail or "GPU evidence rejected")
    return result


def _check_gateway(
    gateway: NodeAttestation,
    nonce: str,
    evidence: AttestationEvidence,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    log: _Log,
) -> None:
    sub = _Log()
    _verify_node(gateway, nonce, evidence, policy, trust, now, sub)
    failed = [n for n, o in sub.checks.items() if o is _FAIL]
    if failed:
        log.checks["gateway"] = _FAIL
        log.reasons.extend(r for r in sub.reasons if r in FAILED_REASONS)
    elif all(o is _PASS for o in sub.checks.values()):
        log.checks["gateway"] = _PASS
    else:
        log.checks["gateway"] = _SKIP
    log.details.extend(f"gateway {d}" for d in sub.details)
