"""The ACI protocol's decisions with ``httpx.MockTransport``: dispatch, early stops, receipt
fetch answers, a missing attestation, ``attest_gateway``'s nonce and progress."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CapturedExchange, RedpillVerifier
from redpill_integrations.wire.fetch_receipt import classify_receipt
from redpill_integrations.wire.flow import Fetched, FetchFailed
from tests.support import FakeTime

BASE = "https://gw.example/v1"
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
ACI = {"x-aci-version": "aci/1", "x-aci-keyset-digest": "sha256:" + "ab" * 32}


def exchange(
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    model: str | None = "phala/m",
    complete: bool = True,
    problem: Reason | None = None,
) -> CapturedExchange:
    return CapturedExchange(
        tag="t",
        url=f"{BASE}/chat/completions",
        request_body=json.dumps({"model": model, "messages": []}).encode(),
        response_body=b'{"id":"chatcmpl-1"}',
        status_code=status,
        streamed=False,
        complete=complete,
        chat_id="chatcmpl-1",
        model=model,
        started_at=T0,
        finished_at=T0,
        problem=problem,
        headers={**ACI, "x-receipt-id": "rcpt-" + "0" * 24} if headers is None else headers,
    )


class Server:
    def __init__(self, answer: Any = None) -> None:
        self.seen: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(404))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answer(request)  # type: ignore[no-any-return]

    def verifier(self, **kw: Any) -> RedpillVerifier:
        t = FakeTime()
        return RedpillVerifier(
            base_url=BASE, api_key="sk-unit", transport=httpx.MockTransport(self),
            sleep=t.sleep, monotonic=t.monotonic, clock=lambda: T0, **kw,
        )  # fmt: skip

    def paths(self) -> list[str]:
        return [r.url.path for r in self.seen]


@pytest.mark.parametrize(
    ("ex", "reason"),
    [
        (exchange(model=None), Reason.MALFORMED_RESPONSE),
        (exchange(headers={**ACI, "content-encoding": "gzip"}), Reason.MALFORMED_RESPONSE),
        (exchange(status=500), Reason.UPSTREAM_HTTP_ERROR),
        (exchange(status=503, headers=ACI), Reason.UPSTREAM_HTTP_ERROR),  # refusal, no receipt
        (exchange(complete=False), Reason.STREAM_INCOMPLETE),
        (exchange(problem=Reason.RESPONSE_TOO_LARGE), Reason.RESPONSE_TOO_LARGE),
    ],
    ids=["no-model", "content-encoding", "500", "503-no-receipt", "incomplete", "too-large"],
)
def test_early_stops_fetch_nothing(ex: CapturedExchange, reason: Reason) -> None:
    server = Server()
    with server.verifier() as v:
        receipt = v.verify_exchange(ex)
    assert receipt.result.status is Status.UNVERIFIABLE
    assert receipt.result.reasons == (reason,)
    assert receipt.result.protocol == "aci"
    assert server.seen == []


def test_a_2xx_without_receipt_id_is_receipt_missing_failed() -> None:
    server = Server()
    with server.verifier() as v:
        result = v.verify(exchange(headers=ACI))
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.RECEIPT_MISSING,))
    assert result.checks["receipt"] == "fail" and server.seen == []


def test_any_x_aci_header_chooses_aci_and_none_chooses_legacy() -> None:
    server = Server()
    with server.verifier() as v:
        aci = v.verify(exchange(headers={"x-aci-keyset-digest": "sha256:00"}))
        legacy = v.verify(exchange(headers={}))
    assert aci.protocol == "aci" and aci.reasons == (Reason.RECEIPT_MISSING,)
    assert legacy.protocol == "legacy"


def _receipt_then(status: int, headers: dict[str, str] | None = None) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if "/aci/receipts/" in request.url.path:
            return httpx.Response(status, headers=headers or {})
        return httpx.Response(404)

    return answer


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retried"),
    [
        (404, None, Reason.RECEIPT_UNAVAILABLE, True),
        (401, None, Reason.RECEIPT_UNAVAILABLE, False),
        (403, None, Reason.RECEIPT_UNAVAILABLE, False),
        (429, {"Retry-After": "2"}, Reason.RATE_LIMITED, True),
        (502, None, Reason.UPSTREAM_HTTP_ERROR, True),
    ],
)
def test_receipt_answers_and_their_reasons(
    status: int, headers: dict[str, str] | None, reason: Reason, retried: bool
) -> None:
    server = Server(_receipt_then(status, headers))
    with server.verifier() as v:
        receipt = v.verify_exchange(exchange())
    lookups = [p for p in server.paths() if "/aci/receipts/" in p]
    assert (len(lookups) > 1) is retried
    assert receipt.aci is not None and receipt.aci.receipt_attempts == len(lookups)
    assert receipt.aci.receipt_fetch_reason is reason
    # the gateway could not be attested either (404): that reason comes first
    assert receipt.result.status is Status.UNVERIFIABLE
    assert receipt.result.reasons == (Reason.UPSTREAM_HTTP_ERROR,)


def test_a_missing_attestation_is_unverifiable_and_the_receipt_is_kept() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "/aci/receipts/" in request.url.path:
            return httpx.Response(200, content=b'{"receipt":"as received"}')
        raise httpx.ConnectTimeout("slow", request=request)

    server = Server(answer)
    with server.verifier() as v:
        receipt = v.verify_exchange(exchange())
    assert receipt.result.status is Status.UNVERIFIABLE
    assert receipt.result.reasons == (Reason.TIMEOUT,)
    assert receipt.aci is not None and receipt.aci.receipt == b'{"receipt":"as received"}'
    assert receipt.aci.attestation_fetch_reason is Reason.TIMEOUT


def test_receipt_classification_is_final_on_200_whatever_the_body() -> None:
    dup = classify_receipt(Fetched(200, httpx.Headers(), b'{"a":1,"a":2}'))
    assert (dup.body, dup.retryable) == (b'{"a":1,"a":2}', False)
    big = classify_receipt(FetchFailed(Reason.RESPONSE_TOO_LARGE, "over"))
    assert (big.reason, big.retryable) == (Reason.RESPONSE_TOO_LARGE, False)


def test_attest_gateway_uses_a_fresh_nonce_with_progress() -> None:
    server = Server(lambda request: httpx.Response(500))
    steps: list[str] = []
    with server.verifier() as v:
        first = v.attest_gateway(progress=steps.append)
        second = v.attest_gateway()
    assert re.fullmatch(r"[0-9a-f]{64}", first.nonce) and first.nonce != second.nonce
    assert [r.url.params["nonce"] for r in server.seen] == [first.nonce, second.nonce]
    assert (first.fetch_reason, first.report, first.passed) == (
        Reason.UPSTREAM_HTTP_ERROR,
        None,
        False,
    )
    assert steps == ["report"]
    assert server.seen[0].headers["authorization"] == "Bearer sk-unit"
