"""The pure judgement: ``.passed`` properties, and the one crash guard with its one reason."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

import redpill_integrations.verify.judgement as judge_module
from redpill_integrations.errors import UnsupportedProtocol
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason, Status
from redpill_integrations.verify import (
    CRASHED,
    AttestationVerdict,
    SignatureCheck,
    SignatureRecord,
    judge,
    judge_attestation,
)
from redpill_integrations.verify.encoding import sha256_hex
from tests.unit.verify.conftest import NEAR_KEY, NEAR_NOW, near_evidence

POLICY = VerificationPolicy()
TRUST = TrustAnchors.production()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PASS = CheckOutcome.PASS


def sig(**changes: object) -> SignatureCheck:
    base: dict[str, object] = {
        "checks": {"signature": PASS, "request_hash": PASS, "response_hash": PASS},
        "reasons": (),
        "request_sha256": "a",
        "response_sha256": "b",
        "signer": "ab" * 20,
    }
    return SignatureCheck(**{**base, **changes})  # type: ignore[arg-type]


def test_signature_check_passes_only_with_a_signer_and_every_check_passing() -> None:
    assert sig().passed
    assert not sig(signer=None).passed
    assert not sig(checks={}).passed
    assert not sig(reasons=(Reason.SIGNATURE_INVALID,)).passed
    assert not sig(checks={"signature": PASS, "response_hash": CheckOutcome.FAIL}).passed


def test_attestation_verdict_passes_only_without_reasons_and_failures() -> None:
    assert AttestationVerdict(checks={"quote": PASS}, reasons=()).passed
    assert not AttestationVerdict(checks={"quote": PASS}, reasons=(Reason.QUOTE_INVALID,)).passed
    assert not AttestationVerdict(checks={"quote": CheckOutcome.NOT_CHECKED}, reasons=()).passed


def test_judge_attestation_turns_a_crash_into_check_not_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object, **kwargs: object) -> AttestationVerdict:
        raise TypeError("a bug")

    monkeypatch.setattr(judge_module, "verify_attestation", boom)
    with caplog.at_level(logging.ERROR):
        verdict = judge_attestation(
            near_evidence(), signer=NEAR_KEY, policy=POLICY, trust=TRUST, at=NEAR_NOW
        )
    assert (verdict.checks, verdict.reasons, verdict.detail) == (
        {},
        (Reason.CHECK_NOT_RUN,),
        CRASHED,
    )
    assert not verdict.passed and "attestation verification crashed" in caplog.text


def test_judge_attestation_keeps_the_reason_of_our_own_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unsupported(*args: object, **kwargs: object) -> AttestationVerdict:
        raise UnsupportedProtocol("chutes")

    monkeypatch.setattr(judge_module, "verify_attestation", unsupported)
    verdict = judge_attestation(
        near_evidence(), signer=NEAR_KEY, policy=POLICY, trust=TRUST, at=NEAR_NOW
    )
    assert verdict.reasons == (Reason.UNSUPPORTED_PROTOCOL,)


def test_judge_turns_a_crash_into_an_unverifiable_check_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*args: object, **kwargs: object) -> SignatureCheck:
        raise RuntimeError("a bug")

    monkeypatch.setattr(judge_module, "check_signature", boom)
    record = SignatureRecord(text="a:b", signature="0x00", signing_algo="ecdsa")
    result = judge(
        record,
        request_body=b"req",
        response_body=b"resp",
        streamed=False,
        attestation=None,
        attestation_fetch_reason=None,
        chat_id="c1",
        model="phala/m",
        policy=POLICY,
        trust=TRUST,
        at=NOW,
        receipt_id="r1",
    )
    assert (result.status, result.reasons, result.detail) == (
        Status.UNVERIFIABLE,
        (Reason.CHECK_NOT_RUN,),
        CRASHED,
    )
    assert (result.chat_id, result.receipt_id) == ("c1", "r1")
    assert (result.request_sha256, result.response_sha256) == (
        sha256_hex(b"req"),
        sha256_hex(b"resp"),
    )
