"""Join a signature check and an attestation verdict into one VerificationResult."""

from __future__ import annotations

from datetime import datetime

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import VerificationResult
from redpill_integrations.verify.models import AttestationVerdict, SignatureCheck


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
    raise NotImplementedError
