"""Attestation fetching against the emulator: nonces, faults, missing dependencies, attest()."""

from __future__ import annotations

import dataclasses

import openai

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.policy import TrustAnchors
from redpill_integrations.results import CheckOutcome, Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

MODEL = "phala/gpt-oss-120b"
MSG = [{"role": "user", "content": "hi"}]


def chat_and_verify(v: RedpillVerifier, emu: Emulator, model: str = MODEL):  # type: ignore[no-untyped-def]
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, http_client=v.http_client())
    tag = v.recorder.new_tag()
    sdk.chat.completions.create(model=model, messages=MSG, extra_headers={CAPTURE_HEADER: tag})
    return v.verify(v.recorder.take(tag))


def test_attest_reports_progress_and_uses_fresh_nonces(emu: Emulator) -> None:
    v = RedpillVerifier(base_url=emu.base_url, api_key=emu.api_key, trust=emu.trust)
    steps: list[str] = []
    first = v.attest(MODEL, progress=steps.append)
    second = v.attest(MODEL, signer=emu.signing_address)
    assert steps == ["report", "collateral", "gpu", "jwks", "verify"]
    assert first.passed and second.passed, (first.verdict.reasons, first.verdict.detail)
    assert first.evidence is not None and second.evidence is not None
    nonces = emu.stats.attestation_nonces
    assert len(nonces) == 2 and len(set(nonces)) == 2
    assert nonces == [first.evidence.nonce, second.evidence.nonce]
    assert len(bytes.fromhex(nonces[0])) == 32


def test_report_ignoring_the_nonce_fails(emu: Emulator) -> None:
    emu.set_faults(Faults(ignore_nonce=True), model=MODEL)
    v = RedpillVerifier(base_url=emu.base_url, api_key=emu.api_key, trust=emu.trust)
    result = chat_and_verify(v, emu)
    assert result.status is Status.FAILED and Reason.NONCE_MISMATCH in result.reasons


def test_foreign_signer_is_not_attested(emu: Emulator) -> None:
    emu.set_faults(Faults(foreign_signer=True), model=MODEL)
    v = RedpillVerifier(base_url=emu.base_url, api_key=emu.api_key, trust=emu.trust)
    result = chat_and_verify(v, emu)
    assert result.status is Status.FAILED and Reason.SIGNER_NOT_ATTESTED in result.reasons


def test_unreachable_nras_and_pccs_are_dependency_unavailable(emu: Emulator) -> None:
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    trust = dataclasses.replace(
        emu.trust,
        nras_url=f"{dead}/v3/attest/gpu",
        nras_jwks_url=f"{dead}/.well-known/jwks.json",
        pccs_url=dead,
    )
    v = RedpillVerifier(base_url=emu.base_url, api_key=emu.api_key, trust=trust)
    result = chat_and_verify(v, emu)
    assert result.status is Status.UNVERIFIABLE
    assert result.reasons == (Reason.DEPENDENCY_UNAVAILABLE,)
    assert result.checks["signature"] is CheckOutcome.PASS
    assert result.checks["quote"] is CheckOutcome.NOT_CHECKED


def test_non_tee_model_fetches_nothing(emu: Emulator) -> None:
    v = RedpillVerifier(base_url=emu.base_url, api_key=emu.api_key, trust=emu.trust)
    result = chat_and_verify(v, emu, model="openai/gpt-4o-mini")
    assert result.reasons == (Reason.MODEL_NOT_TEE,)
    assert not emu.stats.signature_lookups and emu.stats.attestation_fetches == 0


def test_production_anchors_never_accept_the_emulator(emu: Emulator) -> None:
    trust = dataclasses.replace(
        TrustAnchors.production(),
        pccs_url=emu.trust.pccs_url,
        nras_url=emu.trust.nras_url,
        nras_jwks_url=emu.trust.nras_jwks_url,
    )
    v = RedpillVerifier(base_url=emu.base_url, api_key=emu.api_key, trust=trust)
    result = chat_and_verify(v, emu)
    assert result.status is Status.FAILED and Reason.QUOTE_INVALID in result.reasons
