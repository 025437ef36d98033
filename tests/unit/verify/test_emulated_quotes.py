"""A custom root (TrustAnchors.intel_root_ca_der): the real NEAR evidence with its quote re-issued
by the emulator's test PKI, so TCB statuses, advisories, revocation and debug TDs can be tested
through verify_attestation (dcap_qvl.verify_with_root_ca)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from redpill_integrations.emulator.collateral import build_collateral
from redpill_integrations.emulator.pki import TestPki
from redpill_integrations.emulator.quote import QuoteFactory, TdMeasurements
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify import quote_fmspc, verify_attestation
from redpill_integrations.verify.tdx import parse_td_quote
from tests.unit.verify._vectors import NEAR_KEY, NEAR_NOW, dump, near_evidence, near_report_dict

SEED = hashlib.sha256(b"verify-core-tests").digest()
PKI = TestPki.create(SEED, now=NEAR_NOW)
REVOKED_PKI = TestPki.create(SEED, now=NEAR_NOW, revoke_pck=True)
TEST_TRUST = TrustAnchors(kind="test", intel_root_ca_der=PKI.root_der)


def reissued(
    *,
    debug: bool = False,
    pki: TestPki = PKI,
    status: str = "UpToDate",
    report_data: bytes | None = None,
) -> tuple[Any, str]:
    """(evidence, fmspc): the NEAR report whose quote carries the same measurements and
    report_data but is signed by the test PKI, plus collateral for it."""
    data = near_report_dict()
    del data["all_attestations"]
    real = parse_td_quote(bytes.fromhex(data["intel_quote"]))
    quote = QuoteFactory(pki, SEED).build(
        TdMeasurements(mr_td=real.mrtd, mr_config_id=real.mr_config_id, rtmrs=real.rtmrs),
        report_data if report_data is not None else real.report_data,
        debug=debug,
    )
    data["intel_quote"] = quote.hex()
    fmspc = quote_fmspc(quote)
    collateral = build_collateral(pki, tcb_status=status, now=NEAR_NOW).to_v3_json()
    return near_evidence(dump(data), collateral={fmspc: collateral}), fmspc


def run(
    evidence: Any, *, trust: TrustAnchors = TEST_TRUST, policy: VerificationPolicy | None = None
) -> Any:
    return verify_attestation(
        evidence, signer=NEAR_KEY, policy=policy or VerificationPolicy(), trust=trust, now=NEAR_NOW
    )


def test_reissued_quote_passes_every_check_under_the_test_root() -> None:
    evidence, _ = reissued()
    verdict = run(evidence)
    assert verdict.reasons == (), verdict.detail
    assert all(v is CheckOutcome.PASS for v in verdict.checks.values())
    assert verdict.summary.tcb_status == "UpToDate"


def test_the_production_root_rejects_the_test_pki() -> None:
    evidence, _ = reissued()
    verdict = run(evidence, trust=TrustAnchors.production())
    assert verdict.checks["quote"] is CheckOutcome.FAIL
    assert verdict.reasons == (Reason.QUOTE_INVALID,)


def test_debug_td_is_quote_invalid() -> None:
    evidence, _ = reissued(debug=True)
    verdict = run(evidence)
    assert verdict.reasons == (Reason.QUOTE_INVALID,)
    assert "Debug" in (verdict.detail or "")


def test_revoked_pck_certificate_is_quote_invalid() -> None:
    evidence, _ = reissued(pki=REVOKED_PKI)
    verdict = run(evidence, trust=TrustAnchors(kind="test", intel_root_ca_der=REVOKED_PKI.root_der))
    assert verdict.reasons == (Reason.QUOTE_INVALID,)
    assert "Revoked" in (verdict.detail or "")


def test_revoked_tcb_level_is_quote_invalid() -> None:
    evidence, _ = reissued(status="Revoked")
    assert run(evidence).reasons == (Reason.QUOTE_INVALID,)


@pytest.mark.parametrize("status", ["OutOfDate", "SWHardeningNeeded", "ConfigurationNeeded"])
def test_tcb_status_and_advisories_are_judged_by_the_policy(status: str) -> None:
    evidence, _ = reissued(status=status)
    verdict = run(evidence)
    assert verdict.summary.tcb_status == status
    assert verdict.summary.advisory_ids == ("INTEL-SA-00837",)
    accepted = status in VerificationPolicy().accepted_tcb_statuses
    assert verdict.checks["tcb"] is (CheckOutcome.PASS if accepted else CheckOutcome.FAIL)
    assert verdict.reasons == (() if accepted else (Reason.TCB_STATUS_REJECTED,))
    strict = run(evidence, policy=VerificationPolicy(accepted_tcb_statuses=frozenset({"UpToDate"})))
    assert strict.reasons == (Reason.TCB_STATUS_REJECTED,)
    assert strict.checks["quote"] is CheckOutcome.PASS


def test_genuinely_signed_quote_over_other_report_data_is_report_data_mismatch() -> None:
    evidence, _ = reissued(report_data=bytes(64))
    verdict = run(evidence)
    assert verdict.checks["quote"] is CheckOutcome.PASS
    assert verdict.reasons == (Reason.REPORT_DATA_MISMATCH,)
