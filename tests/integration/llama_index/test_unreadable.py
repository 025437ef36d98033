"""Answers that arrived but could not be read: one receipt each, ``ResponseUnreadable`` raised.

* a complete 2xx body the OpenAI SDK cannot parse (JSON nested 100 000 deep, refused by the depth
  guard before the C parser; not JSON at all) is verified and raised as ``ResponseUnreadable``
  (``MALFORMED_RESPONSE``, the raw bytes in ``body``), in strict and annotate mode;
* a connection reset mid-stream raises ``ResponseUnreadable`` (``STREAM_INCOMPLETE``) carrying the
  verdict and the ``ChatResponse`` delivered so far, ``from`` the httpx error;
* an HTTP error keeps its ``openai.APIError`` and leaves no receipt (nothing was delivered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_index.core.base.llms.types import ChatMessage

from redpill_integrations import ReceiptStore, ResponseUnreadable
from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.errors import TransportError
from redpill_integrations.results import Reason, Status

from .conftest import MODEL, make_llm

DEEP = b'{"id": "chatcmpl-deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HI = [ChatMessage(role="user", content="a long enough answer to be split")]


@pytest.fixture
def store(tmp_path: Path) -> ReceiptStore:
    return ReceiptStore(tmp_path / "receipts.db")


def _clients(body: bytes, status: int = 200) -> dict[str, Any]:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": "application/json"}, content=body)

    return {
        "http_client": httpx.Client(transport=httpx.MockTransport(handle)),
        "async_http_client": httpx.AsyncClient(transport=httpx.MockTransport(handle)),
    }


@pytest.mark.parametrize("body", [DEEP, b"{not json"], ids=["nested-100000", "not-json"])
@pytest.mark.parametrize("mode", ["strict", "annotate"])
async def test_unparsable_body_is_verified_and_raised_as_ours(
    emu: Emulator, store: ReceiptStore, body: bytes, mode: str
) -> None:
    llm = make_llm(emu, receipt_store=store, verification=mode, **_clients(body))
    for run in ("sync", "async"):
        with pytest.raises(ResponseUnreadable) as caught:
            if run == "sync":
                llm.chat(HI)
            else:
                await llm.achat(HI)
        error = caught.value
        assert isinstance(error, openai.APIError) and isinstance(error, TransportError)
        assert error.reason is Reason.MALFORMED_RESPONSE and error.body == body
        assert isinstance(error.__cause__, ValueError)  # refused before the C parser
        assert error.result is not None and error.result.status is Status.UNVERIFIABLE
        assert error.result.reasons == (Reason.MALFORMED_RESPONSE,)
        receipt = store.get(error.result.receipt_id or "")
        assert receipt is not None and receipt.response_body == body
        assert receipt.result.reasons == error.result.reasons
    assert len(store.list()) == 2  # one per exchange


async def test_http_error_keeps_the_sdk_error_and_no_receipt(
    emu: Emulator, store: ReceiptStore
) -> None:
    llm = make_llm(
        emu,
        receipt_store=store,
        verification="annotate",
        **_clients(b'{"error": {"message": "no"}}', 500),
    )
    with pytest.raises(openai.InternalServerError):
        llm.chat(HI)
    with pytest.raises(openai.InternalServerError):
        await llm.achat(HI)
    assert store.list() == []


@pytest.mark.parametrize("mode", ["strict", "annotate"])
async def test_stream_reset_raises_ours_with_what_was_delivered(
    emu: Emulator, store: ReceiptStore, mode: str
) -> None:
    emu.set_faults(Faults(reset_mid_stream=True), model=MODEL)
    llm = make_llm(emu, receipt_store=store, verification=mode)
    for run in ("sync", "async"):
        deltas: list[str] = []
        with pytest.raises(ResponseUnreadable) as caught:
            if run == "sync":
                for chunk in llm.stream_chat(HI):
                    deltas.append(chunk.delta or "")
            else:
                async for chunk in await llm.astream_chat(HI):
                    deltas.append(chunk.delta or "")
        error = caught.value
        assert isinstance(error.__cause__, httpx.TransportError)
        assert error.reason is Reason.STREAM_INCOMPLETE
        assert error.result is not None and error.result.reasons == (Reason.STREAM_INCOMPLETE,)
        assert deltas and error.response.message.content == "".join(deltas)
        receipt = store.get(error.result.receipt_id or "")
        assert receipt is not None and receipt.response_body == error.body
        assert receipt.signature_attempts == 0
    assert len(store.list()) == 2


async def test_consumer_stop_is_not_an_error(emu: Emulator, store: ReceiptStore) -> None:
    llm = make_llm(emu, receipt_store=store, verification="annotate")
    stream = llm.stream_chat(HI)
    for chunk in stream:
        assert chunk is not None
        break
    stream.close()
    (receipt,) = store.list()
    assert receipt.result.reasons == (Reason.STREAM_INCOMPLETE,)
