"""Real and published ACI vectors: the live gateway's report, third-party reports with a published
nonce, the PAG spec receipt and session, and the live session listing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify.aci import (
    jcs,
    jcs_sha256,
    parse_aci_report,
    parse_receipt,
    parse_session,
    report_data_statement,
    session_id_of,
    verify_custody,
    verify_gateway,
    verify_receipt_signature,
)
from redpill_integrations.verify.aci.models import KeyEntry, WorkloadKeyset

VECTORS = Path(__file__).parents[3] / "vectors" / "aci"
LIVE = VECTORS / "devproof_aci-tee.redpill.ai_2026-08-18.json"
LIVE_AT = datetime(2026, 8, 18, 12, tzinfo=UTC)
APP_ID = "fdb7a14e5a6675f752e2cb69c9067a98ca402918"
KMS_ROOT = "0334c76e0c3f52ec64cbf9bbf5c910c272330166fd656c0a86bb330963e46910e1"
PAG_NONCE = "cd20088d763605cf78564e5b35524ad52715419624b76e029582a3652758708d"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _statement_ok(report: dict[str, Any], nonce: str | None) -> bool:
    digest = jcs_sha256(report["attestation"]["workload_keyset"])
    assert digest == report["workload_keyset_digest"]
    statement = report_data_statement(digest, nonce)
    return hashlib.sha256(statement).hexdigest() == report["attestation"]["report_data"]


def test_live_gateway_report_verifies_everything_but_the_unpublished_nonce() -> None:
    report = parse_aci_report(LIVE.read_bytes())
    verdict = verify_gateway(
        report,
        nonce="00" * 32,
        collateral_json=None,  # no collateral exists for FMSPC 20A06F000000: never a pass
        policy=VerificationPolicy(),
        trust=TrustAnchors.production(),
        now=LIVE_AT,
    )
    assert verdict.checks == {
        "keyset": CheckOutcome.PASS,
        "report_data": CheckOutcome.FAIL,
        "nonce": CheckOutcome.FAIL,
        "quote": CheckOutcome.NOT_CHECKED,
        "tcb": CheckOutcome.NOT_CHECKED,
        "event_log": CheckOutcome.PASS,
        "compose": CheckOutcome.PASS,
        "measurements": CheckOutcome.PASS,
        "key_custody": CheckOutcome.PASS,
    }
    assert verdict.reasons == (
        Reason.REPORT_DATA_MISMATCH,
        Reason.NONCE_MISMATCH,
        Reason.DEPENDENCY_UNAVAILABLE,
    )
    assert verdict.keyset_digest == (
        "sha256:c6e808d3505c5c7e38d15b2fbcc2c2b2eb377891f6dd6b28ed33132ad9ceb022"
    )
    assert verdict.kms_root == KMS_ROOT
    assert verdict.identity is not None and verdict.identity.app_id == APP_ID
    assert verdict.identity.compose_hash is not None
    assert verdict.identity.compose_hash.startswith("73fa4608")
    assert verdict.code_identity == {
        "kind": "registry",
        "matched": ["kms_root", "app_id", "os_image", "source_commit"],
    }
    assert verdict.source_commit == "30296dd9a0dbaf06e520f2ed1be01eab75c3c287"
    assert verdict.td is not None
    assert verdict.td.report_data == report.report_data + bytes(32) == report.quote_report_data


def test_live_report_custody_chains_reach_the_production_kms_root() -> None:
    report = parse_aci_report(LIVE.read_bytes())
    result = verify_custody(report.custody, report.keyset, app_id=APP_ID, accepted_roots=[KMS_ROOT])
    assert (result.problem, result.kms_root) == (None, KMS_ROOT)
    assert result.app_key is not None and result.app_key.startswith("02cdcc3f")
    other = verify_custody(report.custody, report.keyset, app_id=APP_ID, accepted_roots=["02" * 33])
    assert other.problem is not None and "do not accept" in other.problem
    wrong_app = verify_custody(
        report.custody, report.keyset, app_id="00" * 20, accepted_roots=[KMS_ROOT]
    )
    assert wrong_app.problem is not None


def test_live_report_with_a_foreign_os_image_registry_is_not_allowed() -> None:
    report = parse_aci_report(LIVE.read_bytes())
    trust = TrustAnchors(os_images={"11" * 32: {"name": "other"}})
    verdict = verify_gateway(
        report, nonce="00" * 32, collateral_json=None, policy=VerificationPolicy(), trust=trust,
        now=LIVE_AT,
    )  # fmt: skip
    assert verdict.checks["measurements"] is CheckOutcome.FAIL
    assert Reason.MEASUREMENT_NOT_ALLOWED in verdict.reasons
    assert verdict.code_identity == {
        "kind": "unpinned",
        "matched": ["kms_root", "app_id", "source_commit"],
    }


def test_live_report_measurements_differing_from_the_registry_entry_are_not_allowed() -> None:
    report = parse_aci_report(LIVE.read_bytes())
    image = report.vm_config["os_image_hash"]
    trust = TrustAnchors(os_images={image: {"name": "dstack-0.5.9", "mrtd": "ab" * 48}})
    verdict = verify_gateway(
        report, nonce="00" * 32, collateral_json=None, policy=VerificationPolicy(), trust=trust,
        now=LIVE_AT,
    )  # fmt: skip
    assert verdict.checks["measurements"] is CheckOutcome.FAIL
    hash_only = TrustAnchors(os_images={image: {"name": "dstack-0.5.9"}})
    verdict = verify_gateway(
        report, nonce="00" * 32, collateral_json=None, policy=VerificationPolicy(),
        trust=hash_only, now=LIVE_AT,
    )  # fmt: skip
    assert verdict.checks["measurements"] is CheckOutcome.PASS


@pytest.mark.parametrize(
    ("name", "nonce"),
    [
        (
            "privateer_phala_report_aci1_2026-08-24.json",
            "2ad0e49a3bbdaa1e91bc22464c29d447424d2511d020e83707b3457a77b0e85a",
        ),
        ("pag_tests_aci_report_fixture.json", PAG_NONCE),
        ("pag_verifierts_aci_report_fixture.json", PAG_NONCE),
    ],
)
def test_reports_with_a_published_nonce_bind_it(name: str, nonce: str) -> None:
    report = _load(name)
    assert _statement_ok(report, nonce)
    assert not _statement_ok(report, None)
    assert not _statement_ok(report, "00" * 32)


def test_vana_report_binds_its_nonce_and_its_custody_reaches_the_kms_root() -> None:
    vana = _load("vana_phala_report_aci1_2026-08-28.derived.json")
    report = vana["report"]
    assert _statement_ok(report, vana["nonce"])
    slot = report["attestation"]["evidence"]["quote_report_data"]
    assert slot == report["attestation"]["report_data"] + "00" * 32
    report["attestation"]["evidence"]["quote"] = "00"  # omitted by its publisher
    parsed = parse_aci_report(json.dumps(report).encode())
    result = verify_custody(parsed.custody, parsed.keyset, app_id=APP_ID, accepted_roots=[KMS_ROOT])
    assert (result.problem, result.kms_root) == (None, KMS_ROOT)


def test_pag_fixture_nonce_binds_and_its_stub_quote_is_invalid() -> None:
    raw = (VECTORS / "pag_tests_aci_report_fixture.json").read_bytes()
    report = parse_aci_report(raw)
    at = datetime.fromtimestamp(report.keyset.not_after - 86400, tz=UTC)
    policy, trust = VerificationPolicy(), TrustAnchors.production()
    good = verify_gateway(
        report, nonce=PAG_NONCE, collateral_json=None, policy=policy, trust=trust, now=at
    )
    assert good.checks["nonce"] is CheckOutcome.PASS
    assert good.checks["quote"] is CheckOutcome.FAIL
    assert good.reasons == (Reason.QUOTE_INVALID,)
    wrong = verify_gateway(
        report, nonce="ab" * 32, collateral_json=None, policy=policy, trust=trust, now=at
    )
    assert wrong.reasons == (
        Reason.REPORT_DATA_MISMATCH,
        Reason.NONCE_MISMATCH,
        Reason.QUOTE_INVALID,
    )


def _spec_keyset() -> WorkloadKeyset:
    ks = json.loads((VECTORS / "pag_spec_keyset_53a5cd44.derived.json").read_bytes())
    (key,) = ks["receipt_signing_keys"]
    return WorkloadKeyset(
        document=ks,
        subject=ks["subject"],
        not_after=ks["not_after"],
        receipt_keys=(KeyEntry(key["key_id"], key["algo"], key["public_key"]),),
        e2ee_keys=(),
        tls_spkis=(),
    )


def test_spec_receipt_verifies_and_a_pretty_reparse_too() -> None:
    raw = (VECTORS / "pag_spec_receipt_rcpt-0001.derived.json").read_bytes()
    assert verify_receipt_signature(parse_receipt(raw), _spec_keyset()) is None
    pretty = json.dumps(json.loads(raw), indent=2).encode()
    assert verify_receipt_signature(parse_receipt(pretty), _spec_keyset()) is None
    receipt = parse_receipt(raw)
    request = b'{"messages":[{"content":"hi","role":"user"}],"model":"demo-model"}'
    response = b'{"choices":[],"id":"chatcmpl-123"}'
    assert receipt.events_of("request.received")[0]["body_hash"] == (
        "sha256:" + hashlib.sha256(request).hexdigest()
    )
    assert receipt.events_of("response.returned")[0]["body_hash"] == (
        "sha256:" + hashlib.sha256(response).hexdigest()
    )
    assert receipt.workload_keyset_digest == jcs_sha256(_spec_keyset().document)


def test_spec_receipt_with_one_byte_changed_fails() -> None:
    raw = (VECTORS / "pag_spec_receipt_rcpt-0001.derived.json").read_bytes()
    tampered = raw.replace(b'"model":"demo-model"', b'"model":"demo-modem"')
    assert tampered != raw
    assert verify_receipt_signature(parse_receipt(tampered), _spec_keyset()) == (
        "Ed25519 signature does not verify"
    )


def test_spec_session_recomputes_its_id_and_evidence() -> None:
    raw = (VECTORS / "pag_spec_session_95ad1cb4.derived.json").read_bytes()
    session = parse_session(raw)
    assert session_id_of(session) == hashlib.sha256(raw).hexdigest()
    assert session_id_of(session) is not None
    assert str(session_id_of(session)).startswith("95ad1cb4")
    receipt = parse_receipt((VECTORS / "pag_spec_receipt_rcpt-0001.derived.json").read_bytes())
    assert receipt.events_of("upstream.verified")[0]["session_id"] == session_id_of(session)


def test_listing_chutes_entries_recompute_and_the_others_do_not() -> None:
    listing = _load("devproof_sessions_listing_excerpt_2026-08-18.derived.json")["sessions"]
    outcomes = {}
    for entry in listing:
        listed_id = entry.pop("session_id")
        computed = hashlib.sha256(jcs(entry)).hexdigest()
        outcomes[(entry["upstream_name"], listed_id[:8])] = computed == listed_id
        assert (entry["evidence"] == {}) == (computed == listed_id)
    assert sum(outcomes.values()) == 3
    assert len(outcomes) == 6
