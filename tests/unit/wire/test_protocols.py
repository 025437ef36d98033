"""The protocol seam: the first protocol that accepts an exchange judges it; the shared steps
(no exchange, the one receipt) stay outside every protocol."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify import SignatureRecord
from redpill_integrations.wire.cache import SingleFlightCache
from redpill_integrations.wire.capture import CapturedExchange
from redpill_integrations.wire.flow import run_async, run_sync
from redpill_integrations.wire.protocols import Judgement, choose
from redpill_integrations.wire.verify_flow import VerifyFlow

NOW = datetime(2026, 6, 1, tzinfo=UTC)
EXCHANGE = CapturedExchange(
    tag="t",
    url="https://redpill.test/v1/chat/completions",
    request_body=b'{"model": "acme/m"}',
    response_body=b'{"id": "chatcmpl-1"}',
    status_code=200,
    streamed=False,
    complete=True,
    chat_id="chatcmpl-1",
    model="acme/m",
    started_at=NOW,
    finished_at=NOW,
)
RECORD = SignatureRecord.from_json(b'{"text":"a:b","signature":"0x00","signing_algo":"ecdsa"}')


@dataclasses.dataclass
class Scripted:
    """A protocol that accepts exchanges of one model and answers one reason."""

    name: str
    model: str | None
    reason: Reason
    judged: list[CapturedExchange] = dataclasses.field(default_factory=list)

    def accepts(self, exchange: CapturedExchange) -> bool:
        return self.model is None or exchange.model == self.model

    def judge(self, exchange: CapturedExchange, *, now: datetime) -> Generator[Any, Any, Judgement]:
        self.judged.append(exchange)
        result = VerificationResult.unverifiable(
            self.reason, chat_id=exchange.chat_id, model=exchange.model, verified_at=now
        )
        return Judgement(result=result, protocol=self.name, signature=RECORD, signature_attempts=2)
        yield  # a flow, though it fetches nothing


def run(flow_: VerifyFlow, exchange: CapturedExchange | None) -> Any:
    return run_sync(
        flow_.verify(exchange),
        send=lambda fetch: (_ for _ in ()).throw(AssertionError("nothing is fetched")),
        sleep=lambda s: None,
        cache=SingleFlightCache(),
    )


def flow(*protocols: Scripted, store: ReceiptStore | None = None) -> VerifyFlow:
    return VerifyFlow(
        protocols=protocols,
        base_url="https://redpill.test/v1",
        policy=VerificationPolicy(),
        trust=TrustAnchors.production(),
        clock=lambda: NOW,
        store=store,
    )


def test_choose_takes_the_first_that_accepts_and_falls_back_to_the_last() -> None:
    aci = Scripted("aci", "acme/m", Reason.SIGNATURE_INVALID)
    legacy = Scripted("legacy", "never/m", Reason.SIGNATURE_UNAVAILABLE)
    assert choose((aci, legacy), EXCHANGE) is aci
    assert choose((aci, legacy), dataclasses.replace(EXCHANGE, model="other/m")) is legacy


def test_the_chosen_protocol_judges_and_the_one_receipt_keeps_its_evidence(
    tmp_path: Path,
) -> None:
    store = ReceiptStore(tmp_path / "r.sqlite3")
    aci = Scripted("aci", "acme/m", Reason.SIGNATURE_INVALID)
    legacy = Scripted("legacy", None, Reason.SIGNATURE_UNAVAILABLE)
    receipt = run(flow(aci, legacy, store=store), EXCHANGE)
    assert (aci.judged, legacy.judged) == ([EXCHANGE], [])
    assert receipt.result.reasons == (Reason.SIGNATURE_INVALID,)
    assert receipt.result.receipt_id == receipt.receipt_id
    assert (receipt.signature, receipt.signature_attempts) == (RECORD, 2)
    assert (receipt.request_body, receipt.response_body) == (
        EXCHANGE.request_body,
        EXCHANGE.response_body,
    )
    assert store.list() == [receipt]


def test_no_exchange_is_malformed_without_asking_any_protocol() -> None:
    legacy = Scripted("legacy", None, Reason.SIGNATURE_UNAVAILABLE)
    receipt = run(flow(legacy), None)
    assert legacy.judged == []
    assert receipt.result.reasons == (Reason.MALFORMED_RESPONSE,)
    assert receipt.result.receipt_id is None  # no store: the verdict names no receipt


class _RefusingStore:
    """A store whose writes fail with a foreign error whose text holds a connection string."""

    def put(self, receipt: Any) -> bool:
        raise OSError("connection to postgresql://redpill:s3cret@db.internal failed")


def test_a_receipt_that_cannot_be_stored_is_named_in_the_verdict_without_its_error_text() -> None:
    legacy = Scripted("legacy", None, Reason.SIGNATURE_UNAVAILABLE)
    receipt = run(flow(legacy, store=_RefusingStore()), EXCHANGE)  # type: ignore[arg-type]
    assert receipt.result.reasons == (Reason.SIGNATURE_UNAVAILABLE,)  # the verdict is unchanged
    assert receipt.result.receipt_id is None
    assert receipt.result.receipt_error == "not stored: OSError"
    assert receipt.result.to_dict()["receipt_error"] == "not stored: OSError"


class _ThreadCheckingStore:
    """Records on which thread it was written to: async code must never write on the loop's."""

    def __init__(self) -> None:
        self.put_threads: list[int] = []

    def put(self, receipt: Any) -> bool:
        self.put_threads.append(threading.get_ident())
        return True


async def test_the_async_driver_writes_the_receipt_off_the_event_loop() -> None:
    store = _ThreadCheckingStore()
    legacy = Scripted("legacy", None, Reason.SIGNATURE_UNAVAILABLE)
    receipt = await run_async(
        flow(legacy, store=store).verify(EXCHANGE),  # type: ignore[arg-type]
        send=_never_fetch,
        sleep=_no_sleep,
        cache=SingleFlightCache(),
    )
    assert len(store.put_threads) == 1 and store.put_threads[0] != threading.get_ident()
    assert receipt.result.receipt_id == receipt.receipt_id
    assert receipt.result.receipt_error is None


async def test_an_async_write_that_fails_is_named_in_the_verdict() -> None:
    legacy = Scripted("legacy", None, Reason.SIGNATURE_UNAVAILABLE)
    receipt = await run_async(
        flow(legacy, store=_RefusingStore()).verify(EXCHANGE),  # type: ignore[arg-type]
        send=_never_fetch,
        sleep=_no_sleep,
        cache=SingleFlightCache(),
    )
    assert (receipt.result.receipt_id, receipt.result.receipt_error) == (
        None,
        "not stored: OSError",
    )


async def _never_fetch(fetch: Any) -> Any:
    raise AssertionError("nothing is fetched")


async def _no_sleep(seconds: float) -> None:
    return None
