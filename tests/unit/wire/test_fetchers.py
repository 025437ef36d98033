"""Signature retries, deadlines, single-flight, origins and secrets, on mock transports."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import tenacity
from eth_account import Account
from eth_account.messages import encode_defunct

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.results import CheckOutcome, Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, CapturedExchange, RedpillVerifier
from redpill_integrations.wire.cache import SingleFlightCache
from redpill_integrations.wire.fetch_signature import MIN_ATTEMPT_SECONDS
from tests.support import FakeTime

BASE = "https://api.example.test/v1"
CANARY = "sk-CANARY-7f3a9c1e-do-not-leak"
REQ = b'{"model":"phala/m","messages":[]}'
RESP = b'{"id":"chatcmpl-42","choices":[]}'
NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = Account.create()


def signed_body(req: bytes = REQ, resp: bytes = RESP) -> bytes:
    text = f"{hashlib.sha256(req).hexdigest()}:{hashlib.sha256(resp).hexdigest()}"
    sig = Account.sign_message(encode_defunct(text=text), KEY.key).signature.hex()
    return (
        f'{{"text":"{text}","signature":"0x{sig.removeprefix("0x")}",'
        f'"signing_address":"{KEY.address}","signing_algo":"ecdsa"}}'
    ).encode()


def exchange(model: str = "phala/m", finished: datetime = NOW) -> CapturedExchange:
    return CapturedExchange(
        tag=None,
        url=f"{BASE}/chat/completions",
        request_body=REQ,
        response_body=RESP,
        status_code=200,
        streamed=False,
        complete=True,
        chat_id="chatcmpl-42",
        model=model,
        started_at=finished,
        finished_at=finished,
    )


def make(handler, fake: FakeTime, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("policy", VerificationPolicy(signature_deadline=30.0))
    return RedpillVerifier(
        base_url=BASE,
        api_key=CANARY,
        clock=lambda: NOW,
        sleep=fake.sleep,
        asleep=fake.asleep,
        monotonic=fake.monotonic,
        transport=httpx.MockTransport(handler),
        async_transport=httpx.MockTransport(handler),
        **kw,
    )


def scripted(signature_answers: list[httpx.Response], hits: Counter[str]):  # type: ignore[no-untyped-def]
    answers = iter(signature_answers)

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        hits[path] += 1
        if "/signature/" in path:
            return next(answers, signature_answers[-1])
        return httpx.Response(503)  # attestation report: unavailable

    return handle


def test_404_three_times_then_200_verifies_signature_in_4_attempts() -> None:
    fake, hits = FakeTime(), Counter[str]()
    answers = [httpx.Response(404, json={"error": {"message": "Chat id not found or expired"}})] * 3
    v = make(scripted([*answers, httpx.Response(200, content=signed_body())], hits), fake)
    receipt = v.verify_exchange(exchange())
    assert receipt.signature_attempts == 4 and hits["/v1/signature/chatcmpl-42"] == 4
    assert len(fake.sleeps) == 3 and sum(fake.sleeps) < 30
    res = receipt.result
    assert res.checks["signature"] is CheckOutcome.PASS
    assert res.checks["response_hash"] is CheckOutcome.PASS
    assert res.status is Status.UNVERIFIABLE and res.reasons == (Reason.UPSTREAM_HTTP_ERROR,)
    assert "attempts=4" in (res.detail or "")


async def test_async_error_code_envelope_is_retried() -> None:
    fake, hits = FakeTime(), Counter[str]()
    v = make(
        scripted(
            [
                httpx.Response(200, json={"error_code": 1}),
                httpx.Response(200, content=signed_body()),
            ],
            hits,
        ),
        fake,
    )
    receipt = await v.averify_exchange(exchange())
    assert receipt.signature_attempts == 2
    assert receipt.result.checks["signature"] is CheckOutcome.PASS
    await v.aclose()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(404), Reason.SIGNATURE_UNAVAILABLE),
        (httpx.Response(429, headers={"Retry-After": "7"}), Reason.RATE_LIMITED),
        (httpx.Response(502), Reason.UPSTREAM_HTTP_ERROR),
        (httpx.Response(200, json={"error_code": 404}), Reason.SIGNATURE_UNAVAILABLE),
    ],
)
def test_never_available_ends_unverifiable_within_deadline(
    answer: httpx.Response, reason: Reason
) -> None:
    fake, hits = FakeTime(), Counter[str]()
    v = make(scripted([answer], hits), fake)
    res = v.verify(exchange())
    assert res.status is Status.UNVERIFIABLE and res.reasons == (reason,)
    assert fake.now <= 30.0 and hits["/v1/signature/chatcmpl-42"] >= 2
    assert "/v1/attestation/report" not in hits
    if reason is Reason.RATE_LIMITED:
        assert all(s >= 7 for s in fake.sleeps)  # Retry-After honoured


def test_old_exchange_404_means_expired_and_4xx_is_not_retried() -> None:
    fake, hits = FakeTime(), Counter[str]()
    v = make(scripted([httpx.Response(404)], hits), fake)
    assert v.verify(exchange(finished=NOW - timedelta(hours=1))).reasons == (
        Reason.SIGNATURE_EXPIRED,
    )
    hits.clear()
    v = make(scripted([httpx.Response(401)], hits), fake)
    receipt = v.verify_exchange(exchange())
    assert receipt.result.reasons == (Reason.UPSTREAM_HTTP_ERROR,)
    assert receipt.signature_attempts == 1


def test_timeouts_end_in_timeout() -> None:
    fake = FakeTime()

    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    assert make(handle, fake).verify(exchange()).reasons == (Reason.TIMEOUT,)


@pytest.mark.parametrize(("deadline", "wait", "attempts"), [(10.0, 3.0, 3), (2.0, 0.6, 2)])
def test_no_retry_starts_with_a_sliver_of_the_deadline(
    deadline: float, wait: float, attempts: int
) -> None:
    """A gateway that takes 0.3 s to say 404: each fetch is bounded by what is left of the
    deadline, and a last retry started with less (here 0.1 s, then 0.2 s) ended TIMEOUT instead
    of SIGNATURE_UNAVAILABLE."""
    fake, bounds = FakeTime(), []

    def gateway(request: httpx.Request) -> httpx.Response:
        if "/signature/" not in request.url.path:
            return httpx.Response(503)
        bounds.append(request.extensions["timeout"]["read"])
        if bounds[-1] < 0.3:
            raise httpx.ReadTimeout("too slow for the bound", request=request)
        fake.sleep(0.3)
        return httpx.Response(404)

    v = make(
        gateway,
        fake,
        policy=VerificationPolicy(signature_deadline=deadline),
        backoff=tenacity.wait_fixed(wait),
    )
    receipt = v.verify_exchange(exchange())
    assert receipt.result.reasons == (Reason.SIGNATURE_UNAVAILABLE,)
    assert receipt.signature_attempts == attempts == len(bounds)
    assert min(bounds) >= min(MIN_ATTEMPT_SECONDS, deadline / 4)


def test_real_deadline_is_respected_without_injection() -> None:
    v = RedpillVerifier(
        base_url=BASE,
        api_key=CANARY,
        clock=lambda: NOW,
        policy=VerificationPolicy(signature_deadline=0.3),
        transport=httpx.MockTransport(lambda r: httpx.Response(404)),
    )
    start = datetime.now(UTC)
    assert v.verify(exchange()).reasons == (Reason.SIGNATURE_UNAVAILABLE,)
    assert (datetime.now(UTC) - start).total_seconds() < 1.5


def test_model_not_tee_and_none_fetch_nothing_and_store_one_receipt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake, hits = FakeTime(), Counter[str]()
    store = ReceiptStore(tmp_path / "r.sqlite3")
    v = make(scripted([httpx.Response(404)], hits), fake, receipt_store=store)
    res = v.verify(exchange(model="openai/gpt-4o"))
    assert res.reasons == (Reason.MODEL_NOT_TEE,) and not hits
    none = v.verify(None)
    assert none.reasons == (Reason.MALFORMED_RESPONSE,)
    assert len(store) == 2 and store.get(res.receipt_id or "") is not None
    v2 = make(scripted([httpx.Response(404)], hits), fake, tee_model_prefixes=("openai/",))
    assert v2.verify(exchange(model="openai/gpt-4o")).reasons == (Reason.SIGNATURE_UNAVAILABLE,)


def test_redirects_never_carry_the_key() -> None:
    evil: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host != "api.example.test":
            evil.append(request)
            return httpx.Response(200, content=signed_body())
        return httpx.Response(307, headers={"Location": "https://evil.test/steal"})

    v = RedpillVerifier(
        base_url=BASE,
        api_key=CANARY,
        transport=httpx.MockTransport(handle),
        policy=VerificationPolicy(signature_deadline=0.2),
    )
    assert v.verify(exchange()).status is Status.UNVERIFIABLE
    with v.http_client(httpx.MockTransport(handle)) as c:
        r = c.post(
            f"{BASE}/chat/completions",
            content=REQ,
            headers={"Authorization": f"Bearer {CANARY}", CAPTURE_HEADER: "t"},
        )
        assert r.status_code == 307
    assert evil == []


def test_canary_key_never_in_logs_reprs_exceptions_or_receipts(caplog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    fake = FakeTime()
    seen_auth: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen_auth.append(request.headers.get("authorization", ""))
        if "/signature/" in request.url.path:
            return httpx.Response(200, content=signed_body())
        raise httpx.ConnectError(f"boom {request.url}", request=request)

    store = ReceiptStore(tmp_path / "r.sqlite3")
    v = make(handle, fake, receipt_store=store)
    receipt = v.verify_exchange(exchange())
    assert seen_auth and all(a == f"Bearer {CANARY}" for a in seen_auth)  # to the origin only
    texts = [
        caplog.text,
        repr(v),
        str(v.__dict__),
        receipt.to_json(),
        repr(receipt.result),
        str(receipt.result.to_dict()),
    ]
    texts += [r.to_json() for r in store.list()]
    texts += [(tmp_path / "r.sqlite3").read_bytes().decode("latin-1")]
    assert all(CANARY not in t for t in texts)


def test_single_flight_threads_compute_once() -> None:
    cache, calls, gate = SingleFlightCache(), Counter[str](), threading.Event()

    def compute() -> int:
        calls["n"] += 1
        gate.wait(2)
        return 7

    with ThreadPoolExecutor(100) as pool:
        futures = [
            pool.submit(cache.get_or_compute, "k", compute, lambda v: 60.0) for _ in range(100)
        ]
        gate.set()
        assert {f.result() for f in futures} == {7}
    assert calls["n"] == 1 and cache.peek("k") == 7


async def test_single_flight_tasks_compute_once_and_ttl_expires() -> None:
    now = [0.0]
    cache, calls = SingleFlightCache(monotonic=lambda: now[0]), Counter[str]()

    async def compute() -> int:
        calls["n"] += 1
        await asyncio.sleep(0.01)
        return 9

    got = await asyncio.gather(
        *[cache.aget_or_compute("k", compute, lambda v: 5.0) for _ in range(100)]
    )
    assert set(got) == {9} and calls["n"] == 1
    now[0] = 6.0
    await cache.aget_or_compute("k", compute, lambda v: 0.0)
    assert calls["n"] == 2 and cache.peek("k") is None


async def test_single_flight_waiters_take_over_when_the_leader_is_cancelled() -> None:
    cache, calls = SingleFlightCache(), Counter[str]()

    async def compute() -> int:
        calls["n"] += 1
        await asyncio.sleep(0.05)
        return calls["n"]

    leader = asyncio.create_task(cache.aget_or_compute("k", compute, lambda v: 60.0))
    await asyncio.sleep(0)
    waiters = [
        asyncio.create_task(cache.aget_or_compute("k", compute, lambda v: 60.0)) for _ in range(5)
    ]
    await asyncio.sleep(0.01)
    leader.cancel()
    assert set(await asyncio.gather(*waiters)) == {2} and calls["n"] == 2


def test_internal_crashes_become_unverifiable_never_exceptions(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import redpill_integrations.wire.legacy as legacy

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    fake, hits = FakeTime(), Counter[str]()
    v = make(scripted([httpx.Response(200, content=signed_body())], hits), fake)
    monkeypatch.setattr(legacy, "check_signature", boom)
    assert v.verify(exchange()).reasons == (Reason.CHECK_NOT_RUN,)
    monkeypatch.setattr(legacy.LegacyProtocol, "_early_reason", boom)
    result = v.verify(exchange())
    assert result.status is Status.UNVERIFIABLE and result.reasons == (Reason.CHECK_NOT_RUN,)
    assert "verification crashed" in caplog.text


async def test_a_crashed_verification_still_stores_its_one_receipt(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import redpill_integrations.wire.legacy as legacy

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    store = ReceiptStore(tmp_path / "r.sqlite3")
    fake, hits = FakeTime(), Counter[str]()
    v = make(
        scripted([httpx.Response(200, content=signed_body())], hits), fake, receipt_store=store
    )
    monkeypatch.setattr(legacy.LegacyProtocol, "_early_reason", boom)
    sync_result = v.verify(exchange())
    async_result = await v.averify(exchange())
    for result in (sync_result, async_result):
        assert result.reasons == (Reason.CHECK_NOT_RUN,)
        stored = store.get(result.receipt_id or "")
        assert stored is not None and stored.result == result
        assert (stored.request_body, stored.response_body) == (REQ, RESP)  # nothing is lost
    assert len(store) == 2


@pytest.mark.parametrize(
    ("signer", "sent"),
    [("ab" * 20, "0x" + "ab" * 20), ("cd" * 32, "cd" * 32)],
    ids=["ecdsa-address-gets-0x", "ed25519-key-bare-hex"],
)
def test_attestation_request_names_the_signer_as_servers_expect(signer: str, sent: str) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503)

    fake = FakeTime()
    make(handle, fake, policy=VerificationPolicy(attestation_deadline=1.0)).attest(
        "phala/m", signer=signer
    )
    report = [r for r in seen if r.url.path.endswith("/attestation/report")]
    assert report and report[0].url.params["signing_address"] == sent
    assert len(report[0].url.params["nonce"]) == 64
