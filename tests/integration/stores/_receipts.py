"""Receipts for the store tests, with and without the verdict fields newer verdicts carry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import Receipt
from redpill_integrations.results import Reason, Status, VerificationResult
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class AciResult(VerificationResult):
    """A verdict that also names a protocol and an ACI upstream provider in ``to_dict()``, as
    the verdicts being extended in parallel will; stores read them defensively from the dict."""

    protocol: str | None = None
    provider: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["protocol"] = self.protocol
        d["aci"] = {"upstream": {"provider": self.provider}} if self.provider else None
        return d


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
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(VerificationResult)}
        result = AciResult(**fields, protocol=protocol, provider=provider)
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
