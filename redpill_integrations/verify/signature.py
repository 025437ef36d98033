"""Per-response signatures (SPEC §2.2): the signed text, our hashes, ecdsa and ed25519."""

from __future__ import annotations

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.verify.models import SignatureCheck, SignatureRecord


def check_signature(
    record: SignatureRecord,
    *,
    request_body: bytes,
    response_body: bytes,
    streamed: bool,
    policy: VerificationPolicy,
) -> SignatureCheck:
    """Check ``record`` against sha256 of the captured bytes and recover/verify its signer.

    Sets checks ``signature``, ``request_hash``, ``response_hash``; never raises for bad evidence.
    """
    raise NotImplementedError  # implemented by the core issue
