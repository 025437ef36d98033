"""Receipts for the store tests, legacy and ACI (protocol, upstream provider)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import Receipt
from redpill_integrations.results import (
    AciSummary,
    Reason,
    Status,
    UpstreamSummary,
    VerificationResult,
)
from redpill_integrations.verify.models import AttestationEvidence, SignatureRecord

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EVIDENCE = AttestationEvidence(
    report=b'{"signing_address":"ab"}' + b"x" * 2000,
    nonce="00" * 32,
    collateral={"90c06f000000": '{"tcb_info":"..."}'},
    nras_response=b"[]",
    nras_jwks=b"{}",
    fetched_at=NOW,
)
SIG = SignatureRecord.from_json(b'{"text":"a:b","signature":"0x00","signing_algo":"ecdsa"}')


def aci(result: VerificationResult, *, protocol: str, provider: str | None) -> VerificationResult:
    """``result`` as an ACI verdict naming ``protocol`` and an upstream ``provider``."""
    upstream = UpstreamSummary(provider=provider) if provider else None
    return result.with_updates(protocol=protocol, aci=AciSummary(upstream=upstream))


def receipt(
    i: int,
    status: Status = Status.UNVERIFIABLE,
    *,
    model: str = "phala/m",
    protocol: str | None = None,
    provider: str | None = None,
    evidence: AttestationEvidence | None = EVIDENCE,
) -> Receipt:
    result: VerificationResult = VerificationResult.unverifiable(
        Reason.SIGNATURE_UNAVAILABLE, chat_id=f"c{i}", verified_at=NOW, receipt_id=f"r{i}"
    )
    if status is Status.VERIFIED:
        result = result.with_updates(status=Status.VERIFIED, reasons=())
    if protocol or provider:
        result = aci(result, protocol=protocol or "legacy", provider=provider)
    return Receipt(
        receipt_id=f"r{i}",
        created_at=NOW + timedelta(seconds=i),
        result=result,
        chat_id=f"c{i}",
        model=model,
        request_body=b'{"q":1}',
        response_body=b'{"id":"c"}',
        signature=SIG,
        attestation=evidence,
        policy=VerificationPolicy().to_dict(),
    )
