"""judge_aci end to end on a gateway whose quote verifies under the emulator's test PKI, and one
named negative per reason code (exact reasons)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason, Status, VerificationResult
from redpill_integrations.verify.aci import jcs_sha256, judge_aci
from tests.unit.verify.aci import kit
from tests.unit.verify.aci.kit import NONCE, NOW, T

SESSION = json.dumps(kit.session_dict()).encode()


def judge(**changes: Any) -> VerificationResult:
    values: dict[str, Any] = {
        "report": kit.report_bytes(),
        "nonce": NONCE,
        "collateral_json": kit.COLLATERAL,
        "exchange": kit.exchange(),
        "receipt": kit.receipt_bytes(),
        "session": SESSION,
        "policy": VerificationPolicy(),
        "trust": kit.trust(),
        "now": NOW,
    }
    values.update(changes)
    return judge_aci(**values)


def test_everything_verifies_and_the_verdict_says_what() -> None:
    r = judge(policy=VerificationPolicy(check_session=True))
    assert (r.status, r.reasons) == (Status.VERIFIED, ())
    assert set(r.checks.values()) == {CheckOutcome.PASS}
    assert "gpu" not in r.checks
    assert (r.protocol, r.signed_by, r.signing_algo) == ("aci", "gateway", "ed25519")
    assert r.code_identity == {"kind": "registry", "matched": ["kms_root", "app_id", "os_image"]}
    assert r.aci is not None and r.aci.receipt_id == kit.RECEIPT_ID
    assert r.aci.keyset_digest == jcs_sha256(kit.keyset())
    assert r.aci.kms_root == kit.KMS_ROOT.public_key.format().hex()
    assert r.aci.upstream is not None
    assert (r.aci.upstream.provider, r.aci.upstream.result) == ("phala-86", "verified")
    assert r.attestation is not None and r.attestation.tcb_status == "UpToDate"
    assert VerificationResult.from_dict(r.to_dict()) == r


def test_without_session_check_the_session_is_not_required() -> None:
    r = judge(session=None)
    assert r.status is Status.VERIFIED
    assert r.checks["session"] is CheckOutcome.NOT_CHECKED


def test_pinned_when_policy_allowlists_match() -> None:
    policy = VerificationPolicy(allowed_compose_hashes=[kit.CVM.compose_hash])
    r = judge(policy=policy)
    assert r.status is Status.VERIFIED
    assert r.code_identity == {
        "kind": "pinned",
        "matched": ["kms_root", "app_id", "os_image", "compose_hashes"],
    }


def test_no_collateral_is_unverifiable_never_a_pass() -> None:
    r = judge(collateral_json=None)
    assert (r.status, r.reasons) == (Status.UNVERIFIABLE, (Reason.DEPENDENCY_UNAVAILABLE,))
    assert r.checks["quote"] is CheckOutcome.NOT_CHECKED


def _reasons(**changes: Any) -> tuple[Status, tuple[Reason, ...]]:
    r = judge(**changes)
    return r.status, r.reasons


F = Status.FAILED


def test_tampered_keyset_digest() -> None:
    report = kit.report_bytes(digest="sha256:" + "00" * 32)
    assert _reasons(report=report) == (F, (Reason.KEYSET_DIGEST_MISMATCH,))


def test_wrong_nonce() -> None:
    assert _reasons(nonce="ab" * 32) == (F, (Reason.REPORT_DATA_MISMATCH, Reason.NONCE_MISMATCH))


def test_quote_slot_not_the_statement() -> None:
    report = kit.report_bytes(slot=bytes(64))
    assert _reasons(report=report) == (F, (Reason.REPORT_DATA_MISMATCH,))


def test_debug_td_is_an_invalid_quote() -> None:
    assert _reasons(report=kit.report_bytes(debug=True)) == (F, (Reason.QUOTE_INVALID,))


def test_rejected_tcb_status() -> None:
    policy = VerificationPolicy(accepted_tcb_statuses={"OutOfDate"})
    assert _reasons(policy=policy) == (F, (Reason.TCB_STATUS_REJECTED,))


def test_expired_keyset() -> None:
    later = NOW + timedelta(days=31)
    status, reasons = _reasons(now=later)
    assert status is F and reasons[0] is Reason.KEYSET_EXPIRED


def test_implausibly_distant_keyset_expiry() -> None:
    report = kit.report_bytes(ks=kit.keyset(not_after=T + 400 * 86400))
    receipt = kit.receipt_bytes(
        workload_keyset_digest=jcs_sha256(kit.keyset(not_after=T + 400 * 86400))
    )
    assert _reasons(report=report, receipt=receipt) == (F, (Reason.KEYSET_EXPIRY_IMPLAUSIBLE,))


def test_float_in_the_keyset() -> None:
    ks = kit.keyset()
    body = kit.report_dict(ks=ks)
    body["attestation"]["workload_keyset"]["weight"] = 1.5
    assert _reasons(report=json.dumps(body).encode()) == (F, (Reason.KEYSET_DIGEST_MISMATCH,))


def test_key_listed_under_two_roles() -> None:
    receipt_key = kit.keyset()["receipt_signing_keys"][0]
    ks = kit.keyset(e2ee_public_keys=[{**receipt_key, "key_id": "e2ee-dup", "algo": "x25519"}])
    report = kit.report_bytes(ks=ks)
    receipt = kit.receipt_bytes(workload_keyset_digest=jcs_sha256(ks))
    status, reasons = _reasons(report=report, receipt=receipt)
    assert status is F and reasons[0] is Reason.KEY_ROLE_REUSE


def test_unknown_kms_root() -> None:
    other = coincurve.PrivateKey(b"\x07" * 32)
    assert _reasons(report=kit.report_bytes(root=other)) == (F, (Reason.KEY_CUSTODY_INVALID,))


def test_app_id_not_accepted() -> None:
    trust = kit.trust(aci_app_ids=("00" * 20,))
    assert _reasons(trust=trust) == (F, (Reason.MEASUREMENT_NOT_ALLOWED,))


def test_os_image_not_in_registry() -> None:
    trust = kit.trust(os_images={"11" * 32: {"name": "other"}})
    assert _reasons(trust=trust) == (F, (Reason.MEASUREMENT_NOT_ALLOWED,))


def test_foreign_receipt_key() -> None:
    foreign = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    assert _reasons(receipt=kit.receipt_bytes(key=foreign)) == (F, (Reason.SIGNATURE_INVALID,))


def test_receipt_key_id_not_in_keyset() -> None:
    receipt = kit.receipt_bytes(key_id="receipt-9")
    assert _reasons(receipt=receipt) == (F, (Reason.SIGNER_NOT_ATTESTED,))


def test_receipt_of_another_keyset() -> None:
    receipt = kit.receipt_bytes(workload_keyset_digest="sha256:" + "11" * 32)
    assert _reasons(receipt=receipt) == (F, (Reason.KEYSET_DIGEST_MISMATCH,))


def test_one_byte_changed_in_a_signed_receipt() -> None:
    raw = kit.receipt_bytes()
    tampered = raw.replace(b'"served_at": %d' % T, b'"served_at": %d' % (T + 1))
    assert tampered != raw
    assert _reasons(receipt=tampered) == (F, (Reason.SIGNATURE_INVALID,))


def test_tampered_response_and_request() -> None:
    exchange = kit.exchange(response_body=kit.RESPONSE + b" ")
    assert _reasons(exchange=exchange) == (F, (Reason.RESPONSE_HASH_MISMATCH,))
    exchange = kit.exchange(request_body=kit.REQUEST + b" ")
    assert _reasons(exchange=exchange) == (F, (Reason.REQUEST_HASH_MISMATCH,))


@pytest.mark.parametrize(
    "changes",
    [
        {"receipt_id": "rcpt-ffffffffffffffffffffffff"},
        {"chat_id": "chatcmpl-other"},
        {"endpoint": "/v1/completions"},
        {"started_at": NOW + timedelta(hours=1), "finished_at": NOW + timedelta(hours=1)},
    ],
    ids=["receipt-id", "chat-id", "endpoint", "stale-served-at"],
)
def test_receipt_for_another_exchange(changes: dict[str, Any]) -> None:
    assert _reasons(exchange=kit.exchange(**changes)) == (F, (Reason.RECEIPT_MISMATCH,))


def test_receipt_for_another_model() -> None:
    exchange = kit.exchange(model="phala/other")
    assert _reasons(exchange=exchange) == (F, (Reason.MODEL_MISMATCH,))


def test_receipt_without_request_received_first() -> None:
    doc = kit.receipt_dict()
    events = doc["event_log"]
    receipt = kit.sign({**doc, "event_log": [events[1], events[0], *events[2:]]}, kit.RECEIPT_KEY)
    status, reasons = _reasons(receipt=json.dumps(receipt).encode())
    assert (status, reasons) == (F, (Reason.RECEIPT_EVENT_LOG_INVALID,))


def test_upstream_failed() -> None:
    upstream = {"type": "upstream.verified", "result": "failed", "required": False,
                "model_id": "gpt", "reason": "no attestation"}  # fmt: skip
    receipt = kit.receipt_bytes(upstream=upstream)
    assert _reasons(receipt=receipt) == (F, (Reason.UPSTREAM_NOT_VERIFIED,))
    lax = VerificationPolicy(require_verified_upstream=False)
    assert _reasons(receipt=receipt, policy=lax) == (Status.VERIFIED, ())


def test_required_false_although_we_sent_the_constraint() -> None:
    upstream = {**kit.receipt_dict()["event_log"][2], "required": False}
    receipt = kit.receipt_bytes(upstream=upstream)
    assert _reasons(receipt=receipt) == (F, (Reason.UPSTREAM_NOT_VERIFIED,))
    no_constraint = kit.exchange(sent_aci_constraint=False)
    assert _reasons(receipt=receipt, exchange=no_constraint) == (Status.VERIFIED, ())


def test_provider_not_accepted_and_session_needed() -> None:
    policy = VerificationPolicy(accepted_providers=("chutes",))
    assert _reasons(policy=policy) == (F, (Reason.UPSTREAM_NOT_VERIFIED,))
    ok = VerificationPolicy(accepted_providers=("phala-86",))
    assert _reasons(policy=ok) == (Status.VERIFIED, ())
    assert _reasons(policy=ok, session=None) == (
        Status.UNVERIFIABLE,
        (Reason.SESSION_UNAVAILABLE,),
    )


def test_refusal_is_upstream_refused() -> None:
    upstream = {"type": "upstream.verified", "result": "failed", "required": True,
                "model_id": "gpt", "reason": "no attested route"}  # fmt: skip
    receipt = kit.receipt_bytes(upstream=upstream)
    exchange = kit.exchange(status_code=503, chat_id=None)
    r = judge(receipt=receipt, exchange=exchange)
    assert (r.status, r.reasons) == (Status.UNVERIFIABLE, (Reason.UPSTREAM_REFUSED,))
    assert r.checks["signature"] is CheckOutcome.PASS


def test_missing_and_unavailable_receipt() -> None:
    assert _reasons(exchange=kit.exchange(receipt_id=None)) == (F, (Reason.RECEIPT_MISSING,))
    assert _reasons(receipt=None) == (Status.UNVERIFIABLE, (Reason.RECEIPT_UNAVAILABLE,))


def test_session_mismatches() -> None:
    policy = VerificationPolicy(check_session=True)
    other = json.dumps(kit.session_dict(upstream_name="other")).encode()
    assert _reasons(policy=policy, session=other) == (F, (Reason.SESSION_MISMATCH,))
    assert _reasons(policy=policy, session=None) == (
        Status.UNVERIFIABLE,
        (Reason.SESSION_UNAVAILABLE,),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"established_at": T + 10},
        {"claims": {"tee_attested": {"status": "refuted"}}},
        {"evidence": {"digest": "sha256:" + "00" * 32, "data": "data:text/plain;base64,eA=="}},
    ],
    ids=["window", "claim", "evidence"],
)
def test_session_record_rejected(changes: dict[str, Any]) -> None:
    doc = kit.session_dict(**changes)
    upstream = {**kit.receipt_dict()["event_log"][2], "session_id": kit.session_id(doc)}
    r = judge(
        policy=VerificationPolicy(check_session=True),
        session=json.dumps(doc).encode(),
        receipt=kit.receipt_bytes(upstream=upstream),
    )
    assert (r.status, r.reasons) == (F, (Reason.SESSION_MISMATCH,))


def test_duplicate_keys_and_over_deep_json() -> None:
    dup = b'{"api_version":"aci/1","api_version":"aci/1"}'
    assert _reasons(report=dup) == (F, (Reason.DUPLICATE_JSON_KEY,))
    deep = b'{"api_version":"aci/1","x":' + b"[" * 200 + b"]" * 200 + b"}"
    assert _reasons(report=deep) == (Status.UNVERIFIABLE, (Reason.MALFORMED_RESPONSE,))
    r = judge(receipt=dup)
    assert (r.status, r.reasons) == (F, (Reason.DUPLICATE_JSON_KEY,))


def test_generation_a_and_unknown_shapes_are_unsupported() -> None:
    old = Path(__file__).parents[3] / "vectors/aci/looprig_report_aci1_2026-06-28.json"
    r = judge(report=old.read_bytes())
    assert (r.status, r.reasons) == (F, (Reason.UNSUPPORTED_PROTOCOL,))
    assert r.detail is not None and "generation A" in r.detail
    assert _reasons(report=b'{"api_version":"aci/2"}') == (F, (Reason.UNSUPPORTED_PROTOCOL,))


def test_deep_audit_is_never_silently_a_pass() -> None:
    r = judge(policy=VerificationPolicy(deep_audit=True))
    assert (r.status, r.reasons) == (Status.UNVERIFIABLE, (Reason.CHECK_NOT_RUN,))


def test_a_crash_is_check_not_run_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import redpill_integrations.verify.aci.judge as judge_module

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(judge_module, "verify_gateway", boom)
    with caplog.at_level(logging.ERROR, logger="redpill_integrations"):
        r = judge()
    assert (r.status, r.reasons) == (Status.UNVERIFIABLE, (Reason.CHECK_NOT_RUN,))
    assert "crashed" in caplog.text


def test_random_byte_flips_never_raise_and_a_flipped_receipt_never_verifies() -> None:
    import random

    rng = random.Random(1234)
    report, receipt = kit.report_bytes(), kit.receipt_bytes()
    for _ in range(40):
        for name, good in (("report", report), ("receipt", receipt)):
            data = bytearray(good)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            r = judge(**{name: bytes(data)})  # never raises
            if name == "receipt":
                # every member of a receipt is signed; a flip either breaks the JSON or the
                # signature, or lands in insignificant whitespace (then it must still verify)
                try:
                    same = _canon(json.loads(data)) == _canon(json.loads(good))
                except (ValueError, AttributeError, KeyError, TypeError):
                    same = False
                assert (r.status is Status.VERIFIED) == same
            else:
                # the report is not signed as a whole (only the keyset and the quote are bound):
                # a flip in an unbound field (tee_type, repo_url, custody path) may still verify
                assert r.status in (Status.VERIFIED, Status.FAILED, Status.UNVERIFIABLE)


def _canon(doc: dict[str, Any]) -> dict[str, Any]:
    """The receipt as verified: its signature's hex case does not matter."""
    return {**doc, "signature": doc["signature"].lower()}
