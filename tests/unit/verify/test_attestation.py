"""verify_attestation on the complete real NEAR evidence, and one negative per reason code."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify import (
    MISSING_COLLATERAL,
    MISSING_NRAS,
    AttestationEvidence,
    verify_attestation,
)
from tests.unit.verify._vectors import (
    CLOUD_NONCE,
    CLOUD_NOW,
    NEAR_FMSPC,
    NEAR_KEY,
    NEAR_NONCE,
    NEAR_NOW,
    TokenMinter,
    cached,
    dump,
    near_evidence,
    near_report_dict,
)

ATTESTATION_CHECKS = (
    "signer_attested",
    "nonce",
    "report_data",
    "quote",
    "tcb",
    "event_log",
    "compose",
    "measurements",
    "gpu",
)
PROD = TrustAnchors.production()


def run(
    evidence: AttestationEvidence,
    *,
    signer: str | None = NEAR_KEY,
    policy: VerificationPolicy | None = None,
    now: Any = NEAR_NOW,
) -> Any:
    return verify_attestation(
        evidence, signer=signer, policy=policy or VerificationPolicy(), trust=PROD, now=now
    )


def test_full_real_near_direct_attestation_passes_every_check() -> None:
    verdict = run(near_evidence())
    assert {k: v.value for k, v in verdict.checks.items()} == dict.fromkeys(
        ATTESTATION_CHECKS, "pass"
    )
    assert verdict.reasons == () and verdict.detail is None
    s = verdict.summary
    assert s is not None
    assert (s.nonce, s.signing_address, s.signing_algo, s.report_shape) == (
        NEAR_NONCE,
        NEAR_KEY,
        "ed25519",
        "flat",
    )
    assert (s.tcb_status, s.advisory_ids, s.gpu_count) == ("UpToDate", (), 8)
    assert s.compose_hash == "66007399f064f058af68771c552bcae150c9f88622305631b5141da1aa2f7b7e"
    assert s.app_id == "2c0a0c96cb6dbd659bf1446e2f3fce58172ff91b"
    assert s.os_image_hash == "9b69bb1698bacbb6985409a2c272bcb892e09cdcea63d5399c6768b67d3ff677"
    assert s.mrtd and s.rtmr0 and s.rtmr3 and s.verified_at == NEAR_NOW
    assert verdict.valid_until == s.valid_until and verdict.valid_until > NEAR_NOW
    json.dumps(s.to_dict())  # JSON-serialisable evidence


def test_signer_is_matched_case_insensitively_with_0x() -> None:
    assert run(near_evidence(), signer="0x" + NEAR_KEY.upper()).reasons == ()


def test_allowlists_that_contain_the_real_measurements_pass() -> None:
    base = run(near_evidence()).summary
    policy = VerificationPolicy(
        allowed_compose_hashes=frozenset({base.compose_hash}),
        allowed_app_ids=frozenset({"0x" + base.app_id.upper()}),
        allowed_os_image_hashes=frozenset({base.os_image_hash}),
        allowed_mrtds=frozenset({base.mrtd}),
        allowed_rtmr0=frozenset({base.rtmr0}),
        allowed_rtmr1=frozenset({base.rtmr1}),
        allowed_rtmr2=frozenset({base.rtmr2}),
    )
    verdict = run(near_evidence(), policy=policy)
    assert verdict.checks["measurements"] is CheckOutcome.PASS and verdict.reasons == ()


def test_near_cloud_two_layer_model_node_and_gateway() -> None:
    evidence = AttestationEvidence(
        report=cached("teep_nearcloud_attestation_report.json"),
        nonce=CLOUD_NONCE,
        collateral={NEAR_FMSPC: cached("teep_neardirect_collateral_v3.json").decode()},
    )
    verdict = run(evidence, policy=VerificationPolicy(require_gpu=False), now=CLOUD_NOW)
    assert verdict.reasons == ()
    for name in ATTESTATION_CHECKS[:-1]:
        assert verdict.checks[name] is CheckOutcome.PASS, name
    # the gateway's nonce, report_data, event log and compose pass; its quote (FMSPC b0c06f…)
    # has no recorded collateral, so the informational gateway check stays not_checked.
    assert verdict.checks["gateway"] is CheckOutcome.NOT_CHECKED
    assert "b0c06f000000" in (verdict.detail or "")
    assert verdict.summary.report_shape == "two-layer"


def test_near_cloud_gateway_contradiction_fails_the_verdict() -> None:
    data = json.loads(cached("teep_nearcloud_attestation_report.json"))
    data["gateway_attestation"]["tls_cert_fingerprint"] = "00" * 32
    evidence = AttestationEvidence(report=dump(data), nonce=CLOUD_NONCE)
    verdict = run(evidence, policy=VerificationPolicy(require_gpu=False), now=CLOUD_NOW)
    assert verdict.checks["gateway"] is CheckOutcome.FAIL
    assert Reason.REPORT_DATA_MISMATCH in verdict.reasons


# --- one negative test per reason code --------------------------------------------------------


def edit_report(fn: Callable[[dict[str, Any]], None]) -> bytes:
    data = near_report_dict()
    del data["all_attestations"]
    fn(data)
    return dump(data)


def flip_quote_byte(offset: int) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        quote = bytearray.fromhex(data["intel_quote"])
        quote[offset] ^= 0x01
        data["intel_quote"] = quote.hex()

    return edit


def set_in(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def nvidia_nonce(value: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        payload = json.loads(data["nvidia_payload"])
        payload["nonce"] = value
        data["nvidia_payload"] = json.dumps(payload)

    return edit


COMPOSE = near_report_dict()["info"]["tcb_info"]["app_compose"]
STALE = "00" * 32

# (name, evidence, policy or None, expected check, expected outcome, expected reason)
NEGATIVES: list[
    tuple[str, Callable[[], AttestationEvidence], VerificationPolicy | None, str, str, Reason]
] = [
    (
        "stale nonce",
        lambda: near_evidence(nonce=STALE),
        None,
        "nonce",
        "fail",
        Reason.NONCE_MISMATCH,
    ),
    (
        "echo only differs",
        lambda: near_evidence(edit_report(set_in(("request_nonce",), STALE))),
        None,
        "nonce",
        "fail",
        Reason.NONCE_MISMATCH,
    ),
    (
        "tls fingerprint",
        lambda: near_evidence(edit_report(set_in(("tls_cert_fingerprint",), "11" * 32))),
        None,
        "report_data",
        "fail",
        Reason.REPORT_DATA_MISMATCH,
    ),
    (
        "flipped mr_owner",
        lambda: near_evidence(edit_report(flip_quote_byte(48 + 232))),
        None,
        "quote",
        "fail",
        Reason.QUOTE_INVALID,
    ),
    (
        "flipped quote signature",
        lambda: near_evidence(edit_report(flip_quote_byte(640))),
        None,
        "quote",
        "fail",
        Reason.QUOTE_INVALID,
    ),
    ("expired collateral", lambda: near_evidence(), None, "quote", "fail", Reason.QUOTE_INVALID),
    (
        "tcb not accepted",
        lambda: near_evidence(),
        VerificationPolicy(accepted_tcb_statuses=frozenset({"OutOfDate"})),
        "tcb",
        "fail",
        Reason.TCB_STATUS_REJECTED,
    ),
    (
        "event digest",
        lambda: near_evidence(edit_report(set_in(("event_log", 3, "digest"), "ab" * 48))),
        None,
        "event_log",
        "fail",
        Reason.EVENT_LOG_MISMATCH,
    ),
    (
        "wrong compose",
        lambda: near_evidence(
            edit_report(
                set_in(("info", "tcb_info", "app_compose"), COMPOSE.replace("dstack", "evil"))
            )
        ),
        None,
        "compose",
        "fail",
        Reason.COMPOSE_MISMATCH,
    ),
    (
        "wrong app id",
        lambda: near_evidence(edit_report(set_in(("info", "app_id"), "00" * 20))),
        None,
        "compose",
        "fail",
        Reason.COMPOSE_MISMATCH,
    ),
    (
        "compose not allowed",
        lambda: near_evidence(),
        VerificationPolicy(allowed_compose_hashes=frozenset({"00" * 32})),
        "measurements",
        "fail",
        Reason.MEASUREMENT_NOT_ALLOWED,
    ),
    (
        "rtmr1 not allowed",
        lambda: near_evidence(),
        VerificationPolicy(allowed_rtmr1=frozenset({"00" * 48})),
        "measurements",
        "fail",
        Reason.MEASUREMENT_NOT_ALLOWED,
    ),
    (
        "no nvidia payload",
        lambda: near_evidence(edit_report(set_in(("nvidia_payload",), None))),
        None,
        "gpu",
        "fail",
        Reason.GPU_EVIDENCE_MISSING,
    ),
    (
        "no nras answer",
        lambda: near_evidence(nras_response=None),
        None,
        "gpu",
        "fail",
        Reason.GPU_EVIDENCE_MISSING,
    ),
    (
        "nras unreachable",
        lambda: near_evidence(
            nras_response=None, missing={MISSING_NRAS: Reason.DEPENDENCY_UNAVAILABLE}
        ),
        None,
        "gpu",
        "not_checked",
        Reason.DEPENDENCY_UNAVAILABLE,
    ),
    (
        "empty gpu evidence",
        lambda: near_evidence(
            edit_report(
                set_in(("nvidia_payload",), json.dumps({"nonce": NEAR_NONCE, "evidence_list": []}))
            )
        ),
        None,
        "gpu",
        "fail",
        Reason.GPU_EVIDENCE_MISSING,
    ),
    (
        "gpu payload nonce",
        lambda: near_evidence(edit_report(nvidia_nonce(STALE))),
        None,
        "gpu",
        "fail",
        Reason.GPU_NONCE_MISMATCH,
    ),
    (
        "forged jwks",
        lambda: near_evidence(nras_jwks=TokenMinter().jwks()),
        None,
        "gpu",
        "fail",
        Reason.GPU_TOKEN_INVALID,
    ),
    (
        "no collateral",
        lambda: near_evidence(collateral={}),
        None,
        "quote",
        "not_checked",
        Reason.DEPENDENCY_UNAVAILABLE,
    ),
    (
        "pccs timeout",
        lambda: near_evidence(collateral={}, missing={MISSING_COLLATERAL: Reason.TIMEOUT}),
        None,
        "quote",
        "not_checked",
        Reason.TIMEOUT,
    ),
    (
        "bad collateral",
        lambda: near_evidence(collateral={NEAR_FMSPC: "{}"}),
        None,
        "quote",
        "not_checked",
        Reason.DEPENDENCY_UNAVAILABLE,
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "policy", "check", "outcome", "reason"),
    NEGATIVES,
    ids=[n[0] for n in NEGATIVES],
)
def test_negative(
    name: str,
    make: Callable[[], AttestationEvidence],
    policy: VerificationPolicy | None,
    check: str,
    outcome: str,
    reason: Reason,
) -> None:
    now = NEAR_NOW.replace(year=2027) if name == "expired collateral" else NEAR_NOW
    verdict = run(make(), policy=policy, now=now)
    assert verdict.checks[check].value == outcome, verdict.detail
    assert reason in verdict.reasons, (verdict.reasons, verdict.detail)
    assert verdict.detail and check in verdict.detail


def test_other_signer_is_not_attested() -> None:
    verdict = run(near_evidence(), signer="ab" * 20)
    assert verdict.checks == {"signer_attested": CheckOutcome.FAIL}
    assert verdict.reasons == (Reason.SIGNER_NOT_ATTESTED,) and verdict.summary is None


def test_no_signer_verifies_the_lone_node_but_never_attests_it() -> None:
    verdict = run(near_evidence(), signer=None)
    assert verdict.checks["signer_attested"] is CheckOutcome.NOT_CHECKED
    assert verdict.checks["quote"] is CheckOutcome.PASS


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (
            lambda: cached("teep_redpill_attestation_report_chutes_format.json"),
            Reason.UNSUPPORTED_PROTOCOL,
        ),
        (lambda: b'{"a": 1, "a": 2}', Reason.DUPLICATE_JSON_KEY),
        (lambda: b"<html>502</html>", Reason.MALFORMED_RESPONSE),
        (lambda: edit_report(set_in(("signing_address",), "xyz")), Reason.MALFORMED_RESPONSE),
    ],
)
def test_unusable_reports_give_their_reason(report: Callable[[], bytes], reason: Reason) -> None:
    verdict = run(near_evidence(report()))
    assert verdict.reasons == (reason,)
    assert all(v is CheckOutcome.NOT_CHECKED for v in verdict.checks.values())


def test_chutes_report_is_unsupported_for_the_nonce_the_client_sent() -> None:
    client_nonce = "732f6f1c1b4445d4ab4ad892728343f7fcb0f595ce79f91ecfdeaae657bb7c7e"  # .meta url
    body = cached("teep_redpill_attestation_report_chutes_format.json")
    assert json.loads(body)["nonce"] != client_nonce  # the recorded report was not even fresh
    for nonce in (client_nonce, json.loads(body)["nonce"]):
        verdict = run(near_evidence(body, nonce=nonce))
        assert verdict.reasons == (Reason.UNSUPPORTED_PROTOCOL,)
        assert "chutes" in (verdict.detail or "")


def test_our_own_malformed_nonce_fails_closed() -> None:
    verdict = run(near_evidence(nonce="not-a-nonce"))
    assert verdict.reasons == (Reason.NONCE_MISMATCH,)


def test_gpu_not_required_is_skipped_without_a_reason() -> None:
    verdict = run(near_evidence(nras_response=None), policy=VerificationPolicy(require_gpu=False))
    assert verdict.checks["gpu"] is CheckOutcome.NOT_CHECKED and verdict.reasons == ()


def test_server_asserted_verdicts_are_ignored() -> None:
    def claim_verified(data: dict[str, Any]) -> None:
        data["verified"] = True
        data["info"]["verified"] = True

    verdict = run(near_evidence(edit_report(claim_verified), nras_response=None))
    assert verdict.reasons == (Reason.GPU_EVIDENCE_MISSING,)


def test_input_evidence_is_not_mutated() -> None:
    evidence = near_evidence()
    before = copy.deepcopy(evidence.to_dict())
    run(evidence)
    assert evidence.to_dict() == before
