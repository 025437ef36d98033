"""Cross-check: what the ACI emulator serves is judged by the package's ACI verifier
(``judge_aci``) exactly as each fault intends — clean exchanges verify, each fault yields its
reason code. The emulator and the verifier were written independently from the protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import dcap_qvl
import pytest

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import VerificationResult
from redpill_integrations.verify.aci import AciExchange, judge_aci
from tests.integration.emulator._aci import chat_body, client, fresh_nonce, post_chat

CLEAN = Faults()


async def _judge(
    emu: Emulator, faults: Faults = CLEAN, *, stream: bool = False, **extra: Any
) -> VerificationResult:
    body = chat_body(stream=stream, **extra)
    nonce = fresh_nonce()
    header = {"X-Emulator-Faults": faults.to_header()}
    with client(emu) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": nonce}, headers=header).content
        started = datetime.now(UTC)
        r = post_chat(c, body, **header)
        finished = datetime.now(UTC)
        rid = r.headers.get("x-receipt-id")
        fetched = c.get(f"/v1/aci/receipts/{rid}", headers=header) if rid else None
    receipt = fetched.content if fetched is not None and fetched.status_code == 200 else None
    quote = bytes.fromhex(json.loads(report)["attestation"]["evidence"]["quote"])
    collateral = (await dcap_qvl.get_collateral(emu.pccs_url, quote)).to_json()
    chat_id = None
    if r.status_code == 200:
        first = r.content.split(b"\n", 1)[0].removeprefix(b"data: ") if stream else r.content
        chat_id = json.loads(first)["id"]
    exchange = AciExchange(
        request_body=body,
        response_body=r.content,
        receipt_id=rid,
        chat_id=chat_id,
        endpoint="/v1/chat/completions",
        model=json.loads(body)["model"],
        started_at=started,
        finished_at=finished,
        sent_aci_constraint="provider" in extra,
        status_code=r.status_code,
    )
    return judge_aci(
        report=report,
        nonce=nonce,
        collateral_json=collateral,
        exchange=exchange,
        receipt=receipt,
        policy=VerificationPolicy(),
        trust=emu.trust,
        now=datetime.now(UTC),
    )


def _verdict(result: VerificationResult) -> tuple[str, tuple[str, ...]]:
    return str(result.status.value), tuple(r.value for r in result.reasons)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(
    "model", ["phala/gpt-oss-120b", "phala/deepseek-r1-70b", "phala/qwen-2.5-7b-instruct"]
)
async def test_clean_exchanges_verify(aci_emu: Emulator, model: str, stream: bool) -> None:
    assert _verdict(await _judge(aci_emu, stream=stream, model=model)) == ("verified", ())


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (Faults(receipt_bad_signature=True), ("failed", ("SIGNATURE_INVALID",))),
        (Faults(receipt_foreign_key=True), ("failed", ("SIGNER_NOT_ATTESTED",))),
        (Faults(receipt_body_hash="request"), ("failed", ("REQUEST_HASH_MISMATCH",))),
        (Faults(receipt_body_hash="response"), ("failed", ("RESPONSE_HASH_MISMATCH",))),
        (Faults(tamper_response="alter"), ("failed", ("RESPONSE_HASH_MISMATCH",))),
        (Faults(receipt_mismatch="chat_id"), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(receipt_mismatch="endpoint"), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(receipt_mismatch="receipt_id"), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(receipt_mismatch="model"), ("failed", ("MODEL_MISMATCH",))),
        (Faults(stale_served_at=True), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(upstream_failed=True), ("failed", ("UPSTREAM_NOT_VERIFIED",))),
        (Faults(missing_receipt_id=True), ("failed", ("RECEIPT_MISSING",))),
        (Faults(keyset_digest_mismatch=True), ("failed", ("KEYSET_DIGEST_MISMATCH",))),
        (Faults(ignore_nonce=True), ("failed", ("REPORT_DATA_MISMATCH", "NONCE_MISMATCH"))),
        (Faults(quote_other_statement=True), ("failed", ("REPORT_DATA_MISMATCH",))),
        (Faults(keyset_expired=True), ("failed", ("KEYSET_EXPIRED",))),
        (Faults(custody_unknown_root=True), ("failed", ("KEY_CUSTODY_INVALID",))),
        (Faults(compose_mismatch=True), ("failed", ("COMPOSE_MISMATCH",))),
        (Faults(rtmr_mismatch=True), ("failed", ("EVENT_LOG_MISMATCH",))),
        (Faults(json_fault="duplicate_key"), ("failed", ("DUPLICATE_JSON_KEY",))),
        (Faults(json_fault="deep"), ("unverifiable", ("MALFORMED_RESPONSE",))),
        (Faults(receipt_not_ready=10**9), ("unverifiable", ("RECEIPT_UNAVAILABLE",))),
        (Faults(receipt_unauthorized=True), ("unverifiable", ("RECEIPT_UNAVAILABLE",))),
    ],
    ids=lambda v: v.to_header() if isinstance(v, Faults) else None,
)
async def test_each_fault_yields_its_reason(
    aci_emu: Emulator, faults: Faults, expected: tuple[str, tuple[str, ...]]
) -> None:
    assert _verdict(await _judge(aci_emu, faults)) == expected


async def test_non_tee_model_fails_and_the_constraint_turns_it_into_a_refusal(
    aci_emu: Emulator,
) -> None:
    served = await _judge(aci_emu, model="openai/gpt-4o-mini")
    assert _verdict(served) == ("failed", ("UPSTREAM_NOT_VERIFIED",))
    refused = await _judge(aci_emu, model="openai/gpt-4o-mini", provider={"aci_verified": True})
    assert _verdict(refused) == ("unverifiable", ("UPSTREAM_REFUSED",))
