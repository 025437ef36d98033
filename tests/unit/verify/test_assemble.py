"""assemble_result: one VerificationResult from both halves; a missing check is never a pass."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason, Status
from redpill_integrations.verify import (
    AttestationVerdict,
    SignatureCheck,
    SignatureRecord,
    assemble_result,
    check_signature,
    required_checks,
    verify_attestation,
)
from tests.unit.verify._vectors import NEAR_KEY, NEAR_NOW, near_evidence

POLICY = VerificationPolicy()
REQ, RESP = b'{"model":"m"}', b'{"id":"chatcmpl-1"}'


@cache
def real_verdict() -> AttestationVerdict:
    return verify_attestation(
        near_evidence(),
        signer=NEAR_KEY,
        policy=POLICY,
        trust=TrustAnchors.production(),
        now=NEAR_NOW,
    )


def passing_sig(signer: str = NEAR_KEY) -> SignatureCheck:
    """What check_signature returns for a response signed by the NEAR node's key.

    The node's private key is not ours, so the signature half is the shape check_signature
    produces (its own tests cover producing it); the attestation half is the real verdict.
    """
    return SignatureCheck(
        checks=dict.fromkeys(("signature", "request_hash", "response_hash"), CheckOutcome.PASS),
        reasons=(),
        request_sha256=hashlib.sha256(REQ).hexdigest(),
        response_sha256=hashlib.sha256(RESP).hexdigest(),
        signed_text="t",
        signature="s",
        signing_algo="ed25519",
        signer=signer,
        hash_mode="bytes",
    )


def assemble(
    sig: SignatureCheck, verdict: AttestationVerdict | None, policy: VerificationPolicy = POLICY
) -> object:
    return assemble_result(
        sig,
        verdict,
        chat_id="chatcmpl-1",
        model="phala/m",
        policy=policy,
        now=NEAR_NOW,
        receipt_id="r-1",
    )


def test_real_attestation_and_passing_signature_is_verified() -> None:
    result = assemble_result(
        passing_sig(),
        real_verdict(),
        chat_id="chatcmpl-1",
        model="phala/m",
        policy=POLICY,
        now=NEAR_NOW,
        receipt_id="r-1",
    )
    assert result.status is Status.VERIFIED and result.reasons == ()
    assert set(result.checks) >= set(required_checks(POLICY))
    assert (result.signer, result.hash_mode, result.receipt_id) == (NEAR_KEY, "bytes", "r-1")
    assert result.attestation is not None and result.attestation.gpu_count == 8
    assert result.verified_at == NEAR_NOW
    json.dumps(result.to_dict())


@pytest.mark.parametrize("check", required_checks(POLICY))
@pytest.mark.parametrize("outcome", [CheckOutcome.FAIL, CheckOutcome.NOT_CHECKED, None])
def test_flipping_any_required_check_is_never_verified(
    check: str, outcome: CheckOutcome | None
) -> None:
    sig, verdict = passing_sig(), real_verdict()
    target = sig if check in sig.checks else verdict
    checks = dict(target.checks)
    if outcome is None:
        del checks[check]  # a check that silently never ran
    else:
        checks[check] = outcome
    if target is sig:
        sig = dataclasses.replace(sig, checks=checks)
    else:
        verdict = dataclasses.replace(verdict, checks=checks)
    result = assemble_result(sig, verdict, chat_id="c", model="m", policy=POLICY, now=NEAR_NOW)
    assert result.status is not Status.VERIFIED
    assert result.reasons  # a non-verified result always says why
    assert result.checks[check] is not CheckOutcome.PASS


def test_gpu_is_optional_only_when_the_policy_says_so() -> None:
    relaxed = VerificationPolicy(require_gpu=False)
    assert "gpu" not in required_checks(relaxed) and "gpu" in required_checks(POLICY)
    verdict = verify_attestation(
        near_evidence(nras_response=None),
        signer=NEAR_KEY,
        policy=relaxed,
        trust=TrustAnchors.production(),
        now=NEAR_NOW,
    )
    result = assemble_result(
        passing_sig(), verdict, chat_id="c", model="m", policy=relaxed, now=NEAR_NOW
    )
    assert result.status is Status.VERIFIED and result.checks["gpu"] is CheckOutcome.NOT_CHECKED
    strict = assemble_result(
        passing_sig(), verdict, chat_id="c", model="m", policy=POLICY, now=NEAR_NOW
    )
    assert strict.status is Status.UNVERIFIABLE


def test_missing_attestation_is_never_verified() -> None:
    result = assemble_result(
        passing_sig(), None, chat_id="c", model="m", policy=POLICY, now=NEAR_NOW
    )
    assert result.status is Status.UNVERIFIABLE and result.reasons == (Reason.CHECK_NOT_RUN,)
    assert result.attestation is None


def test_a_verdict_for_another_signer_fails_signer_attested() -> None:
    result = assemble_result(
        passing_sig(signer="ab" * 20),
        real_verdict(),
        chat_id="c",
        model="m",
        policy=POLICY,
        now=NEAR_NOW,
    )
    assert result.status is Status.FAILED
    assert result.reasons == (Reason.SIGNER_NOT_ATTESTED,)
    assert result.checks["signer_attested"] is CheckOutcome.FAIL
    no_signer = assemble_result(
        passing_sig(signer=None),
        real_verdict(),  # type: ignore[arg-type]
        chat_id="c",
        model="m",
        policy=POLICY,
        now=NEAR_NOW,
    )
    assert no_signer.status is not Status.VERIFIED
    assert no_signer.checks["signer_attested"] is CheckOutcome.NOT_CHECKED


def test_end_to_end_response_signed_by_an_unattested_key() -> None:
    key = Ed25519PrivateKey.generate()
    text = f"{hashlib.sha256(REQ).hexdigest()}:{hashlib.sha256(RESP).hexdigest()}"
    record = SignatureRecord(
        text=text,
        signature=key.sign(text.encode()).hex(),
        signing_algo="ed25519",
        signing_address=key.public_key().public_bytes_raw().hex(),
    )
    sig = check_signature(
        record, request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
    )
    assert sig.reasons == ()
    verdict = verify_attestation(
        near_evidence(),
        signer=sig.signer,
        policy=POLICY,
        trust=TrustAnchors.production(),
        now=NEAR_NOW,
    )
    result = assemble_result(sig, verdict, chat_id="c", model="m", policy=POLICY, now=NEAR_NOW)
    assert result.status is Status.FAILED and result.reasons == (Reason.SIGNER_NOT_ATTESTED,)


def test_signature_and_attestation_reasons_are_combined() -> None:
    sig = dataclasses.replace(
        passing_sig(),
        checks={**passing_sig().checks, "response_hash": CheckOutcome.FAIL},
        reasons=(Reason.RESPONSE_HASH_MISMATCH,),
        hash_mode=None,
        detail="response differs",
    )
    verdict = dataclasses.replace(
        real_verdict(),
        checks={**real_verdict().checks, "gpu": CheckOutcome.NOT_CHECKED},
        reasons=(Reason.DEPENDENCY_UNAVAILABLE,),
        detail="gpu: NRAS down",
    )
    result = assemble_result(sig, verdict, chat_id="c", model="m", policy=POLICY, now=NEAR_NOW)
    assert result.status is Status.FAILED
    assert result.reasons == (Reason.RESPONSE_HASH_MISMATCH, Reason.DEPENDENCY_UNAVAILABLE)
    assert result.detail == "response differs; gpu: NRAS down"


def test_a_legacy_verdict_is_signed_by_the_model_node_only_when_the_signature_checked_out() -> None:
    good = assemble(passing_sig(), real_verdict())
    assert good.status is Status.VERIFIED and good.signed_by == "model-node"  # type: ignore[attr-defined]
    failed = dataclasses.replace(
        passing_sig(),
        checks={**passing_sig().checks, "signature": CheckOutcome.FAIL},
        reasons=(Reason.SIGNATURE_INVALID,),
    )
    assert assemble(failed, None).signed_by is None  # type: ignore[attr-defined]
