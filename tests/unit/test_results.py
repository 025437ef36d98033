"""VerificationResult.build derives status from checks and reasons; it can never contradict them."""

from datetime import UTC, datetime

from redpill_integrations.results import (
    ACI_CHECKS,
    FAILED_REASONS,
    LEGACY_CHECKS,
    UNVERIFIABLE_REASONS,
    AciSummary,
    Check,
    CheckOutcome,
    Reason,
    Status,
    UpstreamSummary,
    VerificationResult,
    required_checks,
)

ALL_PASS = {c.value: CheckOutcome.PASS for c in Check}


def test_all_checks_pass_is_verified() -> None:
    r = VerificationResult.build(checks=ALL_PASS, reasons=[])
    assert r.status is Status.VERIFIED
    assert r.reasons == ()


def test_each_required_check_flipped_to_not_checked_is_never_verified() -> None:
    for check in LEGACY_CHECKS:
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


def test_aci_required_checks_have_no_gpu_and_session_only_on_request() -> None:
    assert "gpu" not in required_checks("aci")
    assert "session" not in required_checks("aci")
    assert "session" in required_checks("aci", check_session=True)
    assert required_checks("legacy", require_gpu=False) == tuple(
        c.value for c in LEGACY_CHECKS if c is not Check.GPU
    )


def test_each_aci_required_check_flipped_to_not_checked_is_never_verified() -> None:
    required = required_checks("aci")
    aci_pass = {c.value: CheckOutcome.PASS for c in ACI_CHECKS if c is not Check.SESSION}
    verified = VerificationResult.build(
        checks=aci_pass, reasons=[], required=required, protocol="aci"
    )
    assert verified.status is Status.VERIFIED
    assert verified.checks["session"] is CheckOutcome.NOT_CHECKED
    assert "gpu" not in verified.checks
    for name in required:
        r = VerificationResult.build(
            checks={**aci_pass, name: "not_checked"}, reasons=[], required=required, protocol="aci"
        )
        assert r.status is Status.UNVERIFIABLE, name
        assert r.reasons == (Reason.CHECK_NOT_RUN,)


def test_aci_check_failure_reasons() -> None:
    required = required_checks("aci")
    aci_pass = {c.value: CheckOutcome.PASS for c in ACI_CHECKS}
    for name, reason in (
        ("keyset", Reason.KEYSET_DIGEST_MISMATCH),
        ("key_custody", Reason.KEY_CUSTODY_INVALID),
        ("receipt", Reason.RECEIPT_MISMATCH),
        ("upstream", Reason.UPSTREAM_NOT_VERIFIED),
    ):
        r = VerificationResult.build(
            checks={**aci_pass, name: "fail"}, reasons=[], required=required, protocol="aci"
        )
        assert (r.status, r.reasons) == (Status.FAILED, (reason,))


def test_aci_fields_round_trip_and_old_dicts_still_load() -> None:
    summary = AciSummary(
        receipt_id="rcpt-0123456789abcdef01234567",
        keyset_digest="sha256:" + "ab" * 32,
        app_id="fdb7a14e5a6675f752e2cb69c9067a98ca402918",
        compose_hash="cd" * 32,
        os_image_hash="ef" * 32,
        source_commit="30296dd9a0dbaf06e520f2ed1be01eab75c3c287",
        kms_root="03" + "11" * 32,
        served_at=1750000000,
        upstream=UpstreamSummary(
            provider="chutes",
            model_id="demo",
            result="verified",
            required=True,
            session_id="95" * 32,
            claims={"tee_attested": {"status": "asserted"}},
        ),
    )
    r = VerificationResult.build(
        checks={c.value: CheckOutcome.PASS for c in ACI_CHECKS},
        reasons=[],
        required=required_checks("aci"),
        protocol="aci",
        signed_by="gateway",
        aci=summary,
        code_identity={"kind": "registry", "matched": ["kms_root", "app_id", "os_image"]},
        verified_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    d = r.to_dict()
    assert d["protocol"] == "aci"
    assert d["aci"]["upstream"]["claims"] == {"tee_attested": {"status": "asserted"}}
    assert VerificationResult.from_dict(d) == r
    old = {k: v for k, v in d.items() if k not in ("protocol", "signed_by", "aci", "code_identity")}
    loaded = VerificationResult.from_dict(old)
    assert (loaded.protocol, loaded.signed_by, loaded.aci, loaded.code_identity) == (
        "legacy",
        None,
        None,
        None,
    )
