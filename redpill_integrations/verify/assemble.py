"""Join a signature check and an attestation verdict into one VerificationResult."""

from __future__ import annotations

from datetime import datetime

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import (
    REQUIRED_CHECKS,
    Check,
    CheckOutcome,
    Reason,
    VerificationResult,
)
from redpill_integrations.verify.models import AttestationVerdict, SignatureCheck
from redpill_integrations.verify.served_model import same_model

__all__ = ["LEGACY_ASSUMPTIONS", "assemble_result", "required_checks"]

#: What every legacy verdict takes on trust: Redpill's gateway tells the signing proxy the hash
#: of the request (``X-Request-Hash``), so a matching ``request_hash`` proves the gateway
#: *reported* our bytes, not that the model received them (docs/code-identity.md).
LEGACY_ASSUMPTIONS: tuple[str, ...] = ("request_hash_reported_by_gateway",)


def required_checks(policy: VerificationPolicy) -> tuple[str, ...]:
    """Every check name that must pass; ``gpu`` only when the policy requires GPU evidence."""
    return tuple(c.value for c in REQUIRED_CHECKS if policy.require_gpu or c is not Check.GPU)


def assemble_result(
    sig: SignatureCheck,
    verdict: AttestationVerdict | None,
    *,
    chat_id: str | None,
    model: str | None,
    policy: VerificationPolicy,
    now: datetime,
    receipt_id: str | None = None,
) -> VerificationResult:
    """The verdict for one exchange. ``verdict=None`` (attestation not available) leaves every
    attestation check ``not_checked``, so the result can never be ``verified``.

    Legacy verdicts state their assumption (:data:`LEGACY_ASSUMPTIONS`) and the model that
    answered (``served_model``); a response naming another model than ``model`` (the requested
    one) fails with ``MODEL_MISMATCH`` when the policy checks it (:mod:`.served_model`).

    Guard: a verdict only vouches for the signer it was computed for. If its attested signing key is
    not ``sig.signer`` (e.g. a cached verdict reused for another key), ``signer_attested`` fails.
    """
    checks: dict[str, CheckOutcome] = dict(verdict.checks) if verdict else {}
    checks.update(sig.checks)
    reasons: list[Reason] = list(sig.reasons) + (list(verdict.reasons) if verdict else [])
    details = [d for d in (sig.detail, verdict.detail if verdict else None) if d]

    if checks.get(Check.SIGNER_ATTESTED.value) is CheckOutcome.PASS:
        attested = verdict.summary.signing_address if verdict and verdict.summary else None
        if sig.signer is None or attested is None:
            checks[Check.SIGNER_ATTESTED.value] = CheckOutcome.NOT_CHECKED
        elif attested.lower().removeprefix("0x") != sig.signer.lower().removeprefix("0x"):
            checks[Check.SIGNER_ATTESTED.value] = CheckOutcome.FAIL
            reasons.append(Reason.SIGNER_NOT_ATTESTED)
            details.append("signer_attested: the verdict is for another signing key")

    served = sig.served_model or (sig.response_models[0] if sig.response_models else None)
    if policy.check_served_model and model:
        other = [m for m in sig.response_models if not same_model(model, m)]
        if other:
            reasons.append(Reason.MODEL_MISMATCH)
            details.append(f"model: requested {model!r}, the response names {other[0][:80]!r}")

    return VerificationResult.build(
        checks=checks,
        reasons=reasons,
        required=required_checks(policy),
        chat_id=chat_id,
        model=model,
        request_sha256=sig.request_sha256,
        response_sha256=sig.response_sha256,
        signed_text=sig.signed_text,
        signature=sig.signature,
        signing_algo=sig.signing_algo,
        signer=sig.signer,
        hash_mode=sig.hash_mode,
        attestation=verdict.summary if verdict else None,
        verified_at=now,
        receipt_id=receipt_id,
        detail="; ".join(details)[:2000] or None,
        code_identity=verdict.code_identity if verdict else None,
        assumptions=LEGACY_ASSUMPTIONS,
        served_model=served,
        # the legacy protocol's signer is the model node's own key (proven only when
        # ``signer_attested`` passes); None when no signature checked out
        signed_by="model-node" if sig.passed else None,
    )
