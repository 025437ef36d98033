"""Emulator faults through ChatRedpill: exact status and reasons; strict keeps the content."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk

from redpill_integrations import ReceiptStore, ResponseUnreadable
from redpill_integrations.emulator import Emulator, Faults, Reply
from redpill_integrations.errors import VerificationFailed
from redpill_integrations.langchain import VERDICT_KEY, ChatRedpill, RedpillCallbackHandler
from redpill_integrations.results import Reason, Status

from .conftest import MODEL

Chat = Callable[..., ChatRedpill]
F, U = Status.FAILED, Status.UNVERIFIABLE

# (faults, status, reasons); status None = verified after the server's hiccups.
CASES: dict[str, tuple[Faults, Status | None, tuple[Reason, ...]]] = {
    "signature_not_ready": (Faults(signature_not_ready=3), None, ()),
    "wrong_node": (Faults(wrong_node=2), None, ()),
    "rate_limited": (Faults(rate_limited=1, retry_after=2.0), None, ()),
    "server_error": (Faults(server_error=1), None, ()),
    "error_code_envelope": (Faults(error_code_envelope=1), None, ()),
    "signature_never_ready": (
        Faults(signature_not_ready=10_000),
        U,
        (Reason.SIGNATURE_UNAVAILABLE,),
    ),
    "tamper_response": (Faults(tamper_response="alter"), F, (Reason.RESPONSE_HASH_MISMATCH,)),
    "sign_other_request": (Faults(sign_other_request=True), F, (Reason.REQUEST_HASH_MISMATCH,)),
    "foreign_signer": (Faults(foreign_signer=True), F, (Reason.SIGNER_NOT_ATTESTED,)),
    "ignore_nonce": (
        Faults(ignore_nonce=True),
        F,
        (Reason.NONCE_MISMATCH, Reason.REPORT_DATA_MISMATCH, Reason.GPU_NONCE_MISMATCH),
    ),
    "compose_mismatch": (Faults(compose_mismatch=True), F, (Reason.COMPOSE_MISMATCH,)),
    "rtmr_mismatch": (Faults(rtmr_mismatch=True), F, (Reason.EVENT_LOG_MISMATCH,)),
    "gpu_wrong_nonce": (Faults(gpu_wrong_nonce=True), F, (Reason.GPU_NONCE_MISMATCH,)),
    "gpu_unknown_key": (Faults(gpu_unknown_key=True), F, (Reason.GPU_TOKEN_INVALID,)),
    "unknown_report_shape": (Faults(unknown_report_shape=True), F, (Reason.UNSUPPORTED_PROTOCOL,)),
}


def invoke_or_stream(chat: ChatRedpill, stream: bool) -> Any:
    if not stream:
        return chat.invoke("hello")
    chunks = list(chat.stream("hello"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    return full


# Chat and signature faults differ between JSON and SSE bodies; attestation faults do not.
STREAMED = [
    "signature_not_ready",
    "signature_never_ready",
    "tamper_response",
    "sign_other_request",
    "foreign_signer",
]
pytestmark = pytest.mark.filterwarnings(
    # langchain-core reads error.response.json() of any exception; ours carries the AIMessage
    "ignore:The `json` method is deprecated:DeprecationWarning"
)


@pytest.mark.parametrize(
    ("name", "stream"),
    [(name, False) for name in CASES] + [(name, True) for name in STREAMED],
)
def test_fault_verdict_annotate(
    make_chat: Chat, emu: Emulator, store: ReceiptStore, name: str, stream: bool
) -> None:
    faults, status, reasons = CASES[name]
    emu.set_faults(faults, model=MODEL)
    message = invoke_or_stream(make_chat(verification="annotate"), stream)
    verdict = message.response_metadata[VERDICT_KEY]
    assert (verdict["status"], tuple(verdict["reasons"])) == (
        (status or Status.VERIFIED).value,
        tuple(r.value for r in reasons),
    )
    assert message.content.startswith("Emulated rep")  # a tampered body arrives as tampered
    receipt = store.get(verdict["receipt_id"])
    assert receipt is not None and receipt.result.reasons == reasons


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize("name", ["tamper_response", "foreign_signer", "signature_never_ready"])
def test_strict_raises_and_keeps_the_full_content(
    make_chat: Chat, emu: Emulator, name: str, stream: bool
) -> None:
    faults, status, reasons = CASES[name]
    emu.set_faults(faults, model=MODEL)
    emu.script(MODEL, [Reply.text("the whole paid-for answer, " * 5)])
    handler = RedpillCallbackHandler()
    chat = make_chat()
    received: list[str] = []
    with pytest.raises(VerificationFailed) as err:
        if stream:
            for chunk in chat.stream("hello", config={"callbacks": [handler]}):
                received.append(str(chunk.content))
        else:
            chat.invoke("hello", config={"callbacks": [handler]})
    result, response = err.value.result, err.value.response
    assert (result.status, result.reasons) == (status, reasons)
    assert err.value.reason is reasons[0]
    expected = "the whole paid-for answer, " * 5
    if name == "tamper_response":  # exactly what arrived, tampering included
        assert response.content.startswith("the whole pa") and "altered" in response.content
    else:
        assert response.content == expected
    if stream:
        assert isinstance(response, AIMessageChunk) and "".join(received) == response.content
    assert response.response_metadata[VERDICT_KEY]["status"] == status.value
    assert [r.reasons for r in handler.results] == [reasons] and not handler.all_verified


def test_truncated_stream_is_incomplete_and_strict_keeps_what_arrived(
    make_chat: Chat, emu: Emulator
) -> None:
    emu.set_faults(Faults(truncate_stream=True), model=MODEL)
    message = invoke_or_stream(make_chat(verification="annotate"), stream=True)
    verdict = message.response_metadata[VERDICT_KEY]
    assert (verdict["status"], verdict["reasons"]) == ("unverifiable", ["STREAM_INCOMPLETE"])
    with pytest.raises(VerificationFailed) as err:
        invoke_or_stream(make_chat(), stream=True)
    assert err.value.result.reasons == (Reason.STREAM_INCOMPLETE,)
    assert err.value.response.content.startswith("Emulated reply from ")


def test_reset_mid_stream_raises_but_still_writes_the_receipt(
    make_chat: Chat, emu: Emulator, store: ReceiptStore, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_faults(Faults(reset_mid_stream=True), model=MODEL)
    with (
        caplog.at_level(logging.WARNING, logger="redpill_integrations"),
        pytest.raises(ResponseUnreadable) as err,
    ):
        list(make_chat().stream("hello"))
    assert isinstance(err.value.__cause__, httpx.RemoteProtocolError)
    (receipt,) = store.list()
    assert receipt.result.reasons == (Reason.STREAM_INCOMPLETE,)
    assert "ended early" in caplog.text


async def test_async_fault_verdicts(make_chat: Chat, emu: Emulator) -> None:
    emu.set_faults(Faults(tamper_response="inject", signature_not_ready=2), model=MODEL)
    chat = make_chat(verification="annotate")
    message = await chat.ainvoke("hello")
    chunks = [c async for c in chat.astream("hello")]
    for verdict in (
        message.response_metadata[VERDICT_KEY],
        chunks[-1].response_metadata[VERDICT_KEY],
    ):
        assert (verdict["status"], verdict["reasons"]) == ("failed", ["RESPONSE_HASH_MISMATCH"])
    with pytest.raises(VerificationFailed) as err:
        await make_chat().ainvoke("hello")
    assert err.value.result.reasons == (Reason.RESPONSE_HASH_MISMATCH,)


def test_annotate_logs_a_warning(
    make_chat: Chat, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_faults(Faults(foreign_signer=True), model=MODEL)
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        message = make_chat(verification="annotate").invoke("hello")
    chat_id = message.response_metadata[VERDICT_KEY]["chat_id"]
    assert any(
        "SIGNER_NOT_ATTESTED" in r.getMessage() and chat_id in r.getMessage()
        for r in caplog.records
        if r.name == "redpill_integrations"
    )


def test_off_mode_sees_no_fault_and_fetches_nothing(make_chat: Chat, emu: Emulator) -> None:
    emu.set_faults(Faults(tamper_response="alter", foreign_signer=True), model=MODEL)
    message = make_chat(verification="off").invoke("hello")
    assert VERDICT_KEY not in message.response_metadata
    assert emu.stats.attestation_fetches == 0 and not emu.stats.signature_lookups
    assert emu.stats.chat_requests == 1
