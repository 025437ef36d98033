"""The pure judgement of one exchange's evidence: signature, then attestation, then the verdict.

Used twice, with the same code: live by the wire layer's legacy protocol (which fetches the
evidence in between the steps) and offline by :func:`redpill_integrations.receipts.reverify`.

* :func:`judge_attestation`: ``verify_attestation`` made total. An error of ours that carries a
  reason (``MalformedEvidence``, ``UnsupportedProtocol``, …) becomes that reason; any other
  exception is a bug and becomes ``CHECK_NOT_RUN`` (logged). This is the pure core's one crash
  guard: a check that crashed did not run, and a check that did not run is never a pass.
* :func:`judge`: the whole offline judgement. Its crash guard is the same one (``CHECK_NOT_RUN``)
  around the signature check and the assembly.
* :func:`failed_fetch_verdict`: the attestation verdict when no report could be obtained.
"""

from __future__ import annotations

import logging
from datetime import datetime

from redpill_integrations.errors import RedpillError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify.assemble import assemble_result
from redpill_integrations.verify.attestation import verify_attestation
from redpill_integrations.verify.encoding import sha256_hex
from redpill_integrations.verify.models import (
    AttestationEvidence,
    AttestationVerdict,
    SignatureRecord,
)
from redpill_integrations.verify.signature import check_signature

__all__ = ["CRASHED", "failed_fetch_verdict", "judge", "judge_attestation"]

logger = logging.getLogger("redpill_integrations.verify")

#: The detail every crash guard of the package gives (with the reason ``CHECK_NOT_RUN``).
CRASHED = "verification crashed (see the log)"


def failed_fetch_verdict(reason: Reason, detail: str) -> AttestationVerdict:
    """The verdict when no report could be obtained: nothing checked, one reason."""
    return AttestationVerdict(checks={}, reasons=(reason,), detail=detail)


def judge_attestation(
    evidence: AttestationEvidence,
    *,
    signer: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    at: datetime,
) -> AttestationVerdict:
    """``verify_attestation`` at ``at``; never raises (see the module docstring)."""
    try:
        return verify_attestation(evidence, signer=signer, policy=policy, trust=trust, now=at)
    except RedpillError as exc:
        return failed_fetch_verdict(exc.reason or Reason.CHECK_NOT_RUN, type(exc).__name__)
    except Exception:  # a bug of ours must not become a pass, nor lose the user's response
        logger.exception("attestation verification crashed; verdict is unverifiable")
        return failed_fetch_verdict(Reason.CHECK_NOT_RUN, CRASHED)


def judge(
    record: SignatureRecord,
    *,
    request_body: bytes,
    response_body: bytes,
    streamed: bool,
    attestation: AttestationEvidence | None,
    attestation_fetch_reason: Reason | None,
    chat_id: str | None,
    model: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    at: datetime,
    receipt_id: str | None,
    attestation_at: datetime | None = None,
) -> VerificationResult:
    """The verdict on stored evidence, with no network (what ``reverify`` runs); never raises.

    The attestation is judged at ``attestation_at`` (default ``at``): replaying a receipt uses the
    instant the evidence was fetched and judged, the assembly the instant of the verdict. It is
    judged only when the signature passed, as it was live.
    """
    try:
        sig = check_signature(
            record,
            request_body=request_body,
            response_body=response_body,
            streamed=streamed,
            policy=policy,
        )
        verdict: AttestationVerdict | None = None
        if sig.passed:
            if attestation is not None:
                verdict = judge_attestation(
                    attestation,
                    signer=sig.signer,
                    policy=policy,
                    trust=trust,
                    at=attestation_at or at,
                )
            elif attestation_fetch_reason is not None:
                verdict = failed_fetch_verdict(attestation_fetch_reason, "no attestation report")
        return assemble_result(
            sig, verdict, chat_id=chat_id, model=model, policy=policy, now=at, receipt_id=receipt_id
        )
    except Exception:
        logger.exception("judging stored evidence crashed; verdict is unverifiable")
        return VerificationResult.unverifiable(
            Reason.CHECK_NOT_RUN,
            chat_id=chat_id,
            model=model,
            request_sha256=sha256_hex(request_body),
            response_sha256=sha256_hex(response_body),
            verified_at=at,
            receipt_id=receipt_id,
            detail=CRASHED,
        )
