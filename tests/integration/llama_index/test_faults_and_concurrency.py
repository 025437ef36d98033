"""The emulator's faults through ``Redpill`` (exact status and reasons; strict mode raises with the
whole response), streams stopped early (receipt kept), non-TEE models and 50 concurrent calls."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from redpill_integrations import ResponseUnreadable
from redpill_integrations.emulator import Emulator, Faults, Reply
from redpill_integrations.errors import VerificationFailed
from redpill_integrations.llama_index import Redpill
from redpill_integrations.receipts import ReceiptStore

from .conftest import MODEL, Collector, make_llm, verdict

TEXT = "A reply long enough to arrive in several stream chunks."
MSGS = [ChatMessage(role="user", content="hello")]

FAULTS = [  # (faults, streamed, status, reasons)
    (Faults(tamper_response="alter"), False, "failed", ["RESPONSE_HASH_MISMATCH"]),
    (Faults(tamper_response="alter"), True, "failed", ["RESPONSE_HASH_MISMATCH"]),
    (Faults(foreign_signer=True), False, "failed", ["SIGNER_NOT_ATTESTED"]),
    (Faults(sign_other_request=True), True, "failed", ["REQUEST_HASH_MISMATCH"]),
    (
        Faults(ignore_nonce=True),
        False,
        "failed",
        ["GPU_NONCE_MISMATCH", "NONCE_MISMATCH", "REPORT_DATA_MISMATCH"],
    ),
    (Faults(compose_mismatch=True), False, "failed", ["COMPOSE_MISMATCH"]),
    (Faults(gpu_wrong_nonce=True), True, "failed", ["GPU_NONCE_MISMATCH"]),
    (Faults(truncate_stream=True), True, "unverifiable", ["STREAM_INCOMPLETE"]),
    (Faults(signature_ttl=0), False, "unverifiable", ["SIGNATURE_UNAVAILABLE"]),
]


@pytest.mark.parametrize(("faults", "streamed", "status", "reasons"), FAULTS)
def test_strict_fault_raises_with_exact_verdict_and_full_content(
    emu: Emulator,
    collector: Collector,
    faults: Faults,
    streamed: bool,
    status: str,
    reasons: list[str],
) -> None:
    emu.set_faults(faults, model=MODEL)
    emu.script(replies=[Reply.text(TEXT)])
    llm = make_llm(emu)  # a fresh verifier: attestation faults are not hidden by a cache
    deltas: list[str] = []
    with pytest.raises(VerificationFailed) as info:
        if streamed:
            for chunk in llm.stream_chat(MSGS):
                deltas.append(chunk.delta or "")
        else:
            llm.chat(MSGS)
    result = info.value.result
    assert result.status.value == status
    assert sorted(r.value for r in result.reasons) == reasons
    response = info.value.response
    assert verdict(response) == result.to_dict()
    if faults.tamper_response:  # the caller gets what arrived, and learns it was altered
        assert "[altered" in str(response.message.content)
    elif not faults.truncate_stream:
        assert response.message.content == TEXT
    if streamed:  # every delta reached the caller before the exception
        assert "".join(deltas) == response.message.content
    (event,) = collector.named("RedpillVerificationEvent")
    assert event.verification == result.to_dict()


@pytest.mark.parametrize(
    "faults",
    [
        Faults(signature_not_ready=2),
        Faults(rate_limited=1),
        Faults(wrong_node=2),
        Faults(server_error=1),
    ],
)
def test_transient_signature_faults_still_verify(emu: Emulator, faults: Faults) -> None:
    emu.set_faults(faults, model=MODEL)
    assert verdict(make_llm(emu).chat(MSGS))["status"] == "verified"


async def test_annotate_returns_the_verdict_and_warns(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_faults(Faults(tamper_response="alter"), model=MODEL)
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        response = await make_llm(emu, verification="annotate").achat(MSGS)
    assert verdict(response)["status"] == "failed"
    assert verdict(response)["reasons"] == ["RESPONSE_HASH_MISMATCH"]
    assert "RESPONSE_HASH_MISMATCH" in caplog.text and emu.api_key not in caplog.text


def test_annotate_non_tee_model(emu: Emulator, collector: Collector) -> None:
    response = make_llm(emu, model="openai/gpt-4o-mini", verification="annotate").chat(MSGS)
    assert verdict(response)["status"] == "unverifiable"
    assert verdict(response)["reasons"] == ["MODEL_NOT_TEE"]
    assert len(collector.named("RedpillVerificationEvent")) == 1


def test_stream_stopped_early_keeps_a_receipt(
    emu: Emulator, collector: Collector, tmp_path: object
) -> None:
    store = ReceiptStore(f"{tmp_path}/r.db")
    emu.script(replies=[Reply.text(TEXT * 4)])
    for _chunk in make_llm(emu, receipt_store=store).stream_chat(MSGS):
        break
    (event,) = collector.named("RedpillVerificationEvent")
    assert not event.delivered and event.reasons == ["STREAM_INCOMPLETE"]
    receipt = store.get(event.verification["receipt_id"])
    assert receipt is not None and receipt.result.reasons[0].value == "STREAM_INCOMPLETE"


async def test_async_stream_stopped_early_keeps_a_receipt(
    emu: Emulator, collector: Collector
) -> None:
    emu.script(replies=[Reply.text(TEXT * 4)])
    stream = await make_llm(emu).astream_chat(MSGS)
    async for _chunk in stream:
        break
    await stream.aclose()  # the receipt and the event exist when aclose() returns
    (event,) = collector.named("RedpillVerificationEvent")
    assert not event.delivered and event.reasons == ["STREAM_INCOMPLETE"]


def test_connection_reset_mid_stream_raises_and_keeps_a_receipt(
    emu: Emulator, collector: Collector
) -> None:
    emu.set_faults(Faults(reset_mid_stream=True), model=MODEL)
    emu.script(replies=[Reply.text(TEXT * 4)])
    with pytest.raises(ResponseUnreadable) as err:
        list(make_llm(emu).stream_chat(MSGS))
    assert isinstance(err.value.__cause__, httpx.TransportError)
    (event,) = collector.named("RedpillVerificationEvent")
    assert not event.delivered and event.reasons == ["STREAM_INCOMPLETE"]


async def test_fifty_concurrent_achat_each_with_its_own_verdict(
    emu: Emulator, llm: Redpill, collector: Collector
) -> None:
    prompts = [f"question number {i}" for i in range(50)]
    responses = await asyncio.gather(
        *(llm.achat([ChatMessage(role="user", content=p)]) for p in prompts)
    )
    chat_ids = set()
    for prompt, response in zip(prompts, responses, strict=True):
        result = verdict(response)
        assert result["status"] == "verified"
        assert result["chat_id"] == response.raw.id  # its own exchange, not a neighbour's
        assert str(response.message.content).endswith(prompt)
        chat_ids.add(result["chat_id"])
    assert len(chat_ids) == 50
    events = collector.named("RedpillVerificationEvent")
    assert sorted(e.chat_id for e in events) == sorted(chat_ids)
    assert llm.verifier is not None and len(llm.verifier.recorder) == 0  # every capture taken
    assert len(llm._live) == 0  # and every live response released
