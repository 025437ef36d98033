"""VerificationResult.build derives status from checks and reasons; it can never contradict them."""

from redpill_integrations.results import (
    FAILED_REASONS,
    UNVERIFIABLE_REASONS,
    Check,
    CheckOutcome,
    Reason,
    Status,
    VerificationResult,
)

ALL_PASS = {c.value: CheckOutcome.PASS for c in Check}


def test_all_checks_pass_is_verified() -> None:
    r = VerificationResult.build(checks=ALL_PASS, reasons=[])
    assert r.status is Status.VERIFIED
    assert r.reasons == ()


def test_each_required_check_flipped_to_not_checked_is_never_verified() -> None:
    for check in Check:
        r = VerificationResult.build(checks={**ALL_PASS, check.value: "not_checked"}, reasons=[])
        assert r.status is Status.UNVERIFIABLE, check
        assert r.reasons == (Reason.CHECK_NOT_RUN,)


def test_each_required_check_flipped_to_fail_is_failed_with_its_reason() -> None:
    r = VerificationResult.build(checks={**ALL_PASS, "quote": "fail"}, reasons=[])
    assert r.status is Status.FAILED
    assert r.reasons == (Reason.QUOTE_INVALID,)


def test_failed_reason_wins_over_unverifiable() -> None:
    r = VerificationResult.build(
        checks=ALL_PASS, reasons=[Reason.TIMEOUT, Reason.RESPONSE_HASH_MISMATCH]
    )
    assert r.status is Status.FAILED
    assert r.reasons == (Reason.TIMEOUT, Reason.RESPONSE_HASH_MISMATCH)


def test_a_reason_alone_prevents_verified() -> None:
    r = VerificationResult.build(checks=ALL_PASS, reasons=[Reason.SIGNATURE_EXPIRED])
    assert r.status is Status.UNVERIFIABLE


def test_optional_gpu_check_when_not_required() -> None:
    required = [c.value for c in Check if c is not Check.GPU]
    r = VerificationResult.build(
        checks={**ALL_PASS, "gpu": "not_checked"}, reasons=[], required=required
    )
    assert r.status is Status.VERIFIED


def test_reason_classes_partition_the_codes() -> None:
    assert FAILED_REASONS.isdisjoint(UNVERIFIABLE_REASONS)
    assert FAILED_REASONS | UNVERIFIABLE_REASONS == set(Reason)
    assert Reason.UNSUPPORTED_PROTOCOL in FAILED_REASONS
    assert Reason.MODEL_NOT_TEE in UNVERIFIABLE_REASONS


def test_round_trip_through_dict() -> None:
    r = VerificationResult.unverifiable(Reason.SIGNATURE_UNAVAILABLE, chat_id="chatcmpl-1")
    again = VerificationResult.from_dict(r.to_dict())
    assert again == r
    assert again.to_dict()["checks"]["signature"] == "not_checked"
