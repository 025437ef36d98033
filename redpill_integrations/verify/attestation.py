"""Verify one signer's attestation evidence into an :class:`AttestationVerdict`."""

from __future__ import annotations

from datetime import datetime

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.verify.models import AttestationEvidence, AttestationVerdict


def verify_attestation(
    evidence: AttestationEvidence,
    *,
    signer: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
) -> AttestationVerdict:
    """Never raises for bad evidence: every problem becomes a reason code."""
    raise NotImplementedError
