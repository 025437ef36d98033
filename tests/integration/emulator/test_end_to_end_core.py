"""End to end through the package's own pure core (verify/), with raw httpx for the fetching."""

from __future__ import annotations

import datetime as dt

import dcap_qvl
import httpx
import pytest

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason
from redpill_integrations.verify import (
    AttestationEvidence,
    SignatureRecord,
    assemble_result,
    check_signature,
    parse_report,
    quote_fmspc,
    verify_attestation,
)

from ._raw import chat, chat_body, client, signature

POLICY = VerificationPolicy()


async def _evidence(
    emu: Emulator, nonce: str, algo: str = "ecdsa", **headers: str
) -> AttestationEvidence:
    async with httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"}
    ) as c:
        params = {"model": "phala/gpt-oss-120b", "nonce": nonce, "signing_algo": algo}
        r = await c.get("/attestation/report", params=params, headers=headers)
        nras_url, jwks_url = emu.trust.nras_url, emu.trust.nras_jwks_url
        report = parse_report(r.content)
        payload = report.nodes[0].nvidia_payload
        assert payload is not None
        nras = await c.post(nras_url, content=payload.encode())
        jwks = await c.get(jwks_url)
    collateral: dict[str, str] = {}
    for node in (*report.nodes, *([report.gateway] if report.gateway else [])):
        fmspc = quote_fmspc(node.intel_quote)
        if fmspc not in collateral:
            col = await dcap_qvl.get_collateral(emu.trust.pccs_url, node.intel_quote)
            collateral[fmspc] = col.to_json()
    return AttestationEvidence(
        report=r.content,
        nonce=nonce,
        collateral=collateral,
        nras_response=nras.content,
        nras_jwks=jwks.content,
    )


async def _verify(
    emu: Emulator,
    *,
    stream: bool,
    report_faults: Faults | None = None,
    nonce: str = "ab" * 32,
    policy: VerificationPolicy = POLICY,
):
    body = chat_body(stream=stream)
    algo = policy.signing_algo
    with client(emu) as c:
        chat_id, raw, _ = chat(c, body)
        record = SignatureRecord.from_json(signature(c, chat_id, algo=algo).content)
        headers = {"X-Emulator-Faults": report_faults.to_header()} if report_faults else {}
    evidence = await _evidence(emu, nonce, algo, **headers)
    sig = check_signature(
        record, request_body=body, response_body=raw, streamed=stream, policy=policy
    )
    now = dt.datetime.now(dt.UTC)
    verdict = verify_attestation(
        evidence, signer=sig.signer, policy=policy, trust=emu.trust, now=now
    )
    return assemble_result(
        sig, verdict, chat_id=chat_id, model="phala/gpt-oss-120b", policy=policy, now=now
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_core_verifies_emulator_chat(emu: Emulator, stream: bool) -> None:
    result = await _verify(emu, stream=stream, nonce=bytes(range(32)).hex())
    assert result.verified, (result.reasons, result.checks)
    assert all(v == "pass" for v in result.checks.values())


async def test_core_rejects_stale_nonce(emu: Emulator) -> None:
    result = await _verify(emu, stream=False, report_faults=Faults(ignore_nonce=True))
    assert not result.verified
    assert Reason.NONCE_MISMATCH in result.reasons


async def test_two_layer_report_verifies(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(report_shape="two-layer", seed="two-layer", protocol="legacy")
    result = await _verify(emu, stream=True)
    assert result.verified, (result.reasons, result.checks)


async def test_ed25519_three_part_tls_bound_multi_gpu(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(
        signing_algo="ed25519", signed_text_parts=3, tls_bound=True, gpu_count=4, protocol="legacy"
    )
    result = await _verify(emu, stream=True, policy=VerificationPolicy(signing_algo="ed25519"))
    assert result.verified, (result.reasons, result.checks)
