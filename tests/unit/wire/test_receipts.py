"""Receipt serialisation and offline re-verification (the store contract is tested against both
backends in ``tests/integration/stores``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from redpill_integrations.errors import ReceiptError
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import Receipt, ReceiptStore, reverify
from redpill_integrations.results import Reason, Status, VerificationResult
from redpill_integrations.verify.models import AttestationEvidence, SignatureRecord

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EVIDENCE = AttestationEvidence(
    report=b'{"signing_address":"ab"}' + b"x" * 5000,
    nonce="00" * 32,
    collateral={"90c06f000000": '{"tcb_info":"..."}'},
    nras_response=b"[]",
    nras_jwks=b"{}",
    fetched_at=NOW,
)
SIG = SignatureRecord.from_json(b'{"text":"a:b","signature":"0x00","signing_algo":"ecdsa"}')


def receipt(i: int, status: Status = Status.UNVERIFIABLE, **kw) -> Receipt:  # type: ignore[no-untyped-def]
    result = VerificationResult.unverifiable(
        Reason.SIGNATURE_UNAVAILABLE, chat_id=f"c{i}", verified_at=NOW, receipt_id=f"r{i}"
    )
    if status is Status.VERIFIED:
        result = result.with_updates(status=Status.VERIFIED, reasons=())
    return Receipt(
        receipt_id=f"r{i}",
        created_at=NOW.replace(minute=i % 60),
        result=result,
        chat_id=f"c{i}",
        model="phala/m",
        request_body=b'{"q":1}',
        response_body=b'{"id":"c"}',
        signature=SIG,
        attestation=EVIDENCE,
        policy=VerificationPolicy().to_dict(),
        **kw,
    )


def test_receipt_json_round_trip_is_exact() -> None:
    r = receipt(1, signature_attempts=3)
    again = Receipt.from_json(r.to_json())
    assert again == r and again.to_json() == r.to_json()
    assert again.attestation == EVIDENCE and again.signature is not None
    assert again.signature.raw == SIG.raw


@pytest.mark.parametrize("bad", ["not json", "[]", '{"format": 99}', '{"format": 1}'])
def test_unreadable_receipts_raise_receipt_error(bad: str) -> None:
    with pytest.raises(ReceiptError):
        Receipt.from_json(bad)


def test_default_path_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDPILL_RECEIPTS", str(tmp_path / "env.sqlite3"))
    store = ReceiptStore.default()
    assert store.path == tmp_path / "env.sqlite3" and store.path.exists()


def test_reverify_without_signature_or_bodies_fails_closed() -> None:
    no_sig = Receipt(
        receipt_id="x", created_at=NOW, result=VerificationResult.unverifiable(Reason.MODEL_NOT_TEE)
    )
    again = reverify(no_sig)
    assert again.status is Status.UNVERIFIABLE and again.reasons == (Reason.MODEL_NOT_TEE,)
    hashes_only = Receipt(
        receipt_id="y",
        created_at=NOW,
        result=receipt(1).result,
        signature=SIG,
        request_sha256="00" * 32,
        response_sha256="11" * 32,
    )
    assert reverify(hashes_only).reasons == (Reason.CHECK_NOT_RUN,)
