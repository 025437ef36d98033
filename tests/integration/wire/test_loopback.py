"""The wire layer against the loopback emulator, driven by the OpenAI SDK itself."""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from redpill_integrations.emulator import Emulator, Faults, Reply
from redpill_integrations.receipts import Receipt, ReceiptStore, reverify
from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

MODEL = "phala/gpt-oss-120b"
CANARY = "sk-CANARY-loopback-91c2e7"
MSG = [{"role": "user", "content": "hello"}]


class NoWait:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)

    async def asleep(self, s: float) -> None:
        self.sleeps.append(s)
        await asyncio.sleep(0)


def verifier(emu: Emulator, tmp_path: Path | None = None, **kw) -> RedpillVerifier:  # type: ignore[no-untyped-def]
    nw = NoWait()
    store = ReceiptStore(tmp_path / "receipts.sqlite3") if tmp_path else None
    return RedpillVerifier(
        base_url=emu.base_url,
        api_key=CANARY,
        trust=emu.trust,
        receipt_store=store,
        sleep=nw.sleep,
        asleep=nw.asleep,
        **kw,
    )


def assert_server_hashes(result) -> None:  # type: ignore[no-untyped-def]
    assert result.status is Status.VERIFIED, (result.reasons, result.checks, result.detail)
    req_hash, resp_hash = result.signed_text.split(":")[-2:]
    assert (result.request_sha256, result.response_sha256) == (req_hash, resp_hash)


@pytest.mark.parametrize("stream", [False, True])
def test_sync_sdk_capture_verifies(emu: Emulator, stream: bool, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    v = verifier(emu, tmp_path)
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=CANARY, http_client=v.http_client())
    tag = v.recorder.new_tag()
    out = sdk.chat.completions.create(
        model=MODEL,
        messages=MSG,
        stream=stream,  # type: ignore[call-overload]
        extra_headers={CAPTURE_HEADER: tag},
    )
    if stream:
        chunks = list(out)
        chat_id = chunks[0].id
    else:
        chat_id = out.id
    exchange = v.recorder.take(tag)
    assert exchange is not None and exchange.chat_id == chat_id and exchange.streamed is stream
    receipt = v.verify_exchange(exchange)
    assert_server_hashes(receipt.result)
    assert receipt.result.receipt_id == receipt.receipt_id
    stored = v.receipt_store.get(receipt.receipt_id)  # type: ignore[union-attr]
    assert stored is not None and stored.to_json() == receipt.to_json()
    assert CANARY not in caplog.text and CANARY not in receipt.to_json()
    v.close()


class GzipProxy(httpx.BaseTransport):
    """A middlebox that compresses every answer although the client asked for identity."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.inner.handle_request(request)
        body = answer.read()
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return httpx.Response(
            answer.status_code,
            content=gzip.compress(body),
            headers={**headers, "Content-Encoding": "gzip"},
        )


@pytest.mark.parametrize("stream", [False, True])
def test_compressed_answers_are_decoded_for_the_hash(emu: Emulator, stream: bool) -> None:
    v = verifier(emu)
    sdk = openai.OpenAI(
        base_url=emu.base_url, api_key=CANARY, http_client=v.http_client(GzipProxy())
    )
    tag = v.recorder.new_tag()
    out = sdk.chat.completions.create(
        model=MODEL,
        messages=MSG,
        stream=stream,  # type: ignore[call-overload]
        extra_headers={CAPTURE_HEADER: tag},
    )
    if stream:
        list(out)
    exchange = v.recorder.take(tag)
    assert exchange is not None and not exchange.response_body.startswith(b"\x1f\x8b")
    assert_server_hashes(v.verify(exchange))


@pytest.mark.parametrize("stream", [False, True])
async def test_async_sdk_capture_verifies(emu: Emulator, stream: bool) -> None:
    v = verifier(emu)
    sdk = openai.AsyncOpenAI(
        base_url=emu.base_url, api_key=CANARY, http_client=v.async_http_client()
    )
    tag = v.recorder.new_tag()
    out = await sdk.chat.completions.create(
        model=MODEL,
        messages=MSG,
        stream=stream,  # type: ignore[call-overload]
        extra_headers={CAPTURE_HEADER: tag},
    )
    if stream:
        async for _ in out:
            pass
    result = await v.averify(v.recorder.take(tag))
    assert_server_hashes(result)
    await v.aclose()


def test_early_break_is_stream_incomplete_and_immediate(emu: Emulator) -> None:
    emu.script(MODEL, [Reply.text("word " * 3000)])
    v = verifier(emu)
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=CANARY, http_client=v.http_client())
    tag = v.recorder.new_tag()
    stream = sdk.chat.completions.create(
        model=MODEL, messages=MSG, stream=True, extra_headers={CAPTURE_HEADER: tag}
    )
    start = time.monotonic()
    for _ in stream:
        break
    stream.close()
    assert time.monotonic() - start < 0.5
    result = v.verify(v.recorder.take(tag))
    assert result.status is Status.UNVERIFIABLE and result.reasons == (Reason.STREAM_INCOMPLETE,)


async def test_async_early_break_is_stream_incomplete_and_immediate(emu: Emulator) -> None:
    emu.script(MODEL, [Reply.text("word " * 3000)])
    v = verifier(emu)
    sdk = openai.AsyncOpenAI(
        base_url=emu.base_url, api_key=CANARY, http_client=v.async_http_client()
    )
    tag = v.recorder.new_tag()
    stream = await sdk.chat.completions.create(
        model=MODEL, messages=MSG, stream=True, extra_headers={CAPTURE_HEADER: tag}
    )
    start = time.monotonic()
    async for _ in stream:
        break
    await stream.close()
    assert time.monotonic() - start < 0.5
    result = await v.averify(v.recorder.take(tag))
    assert result.status is Status.UNVERIFIABLE and result.reasons == (Reason.STREAM_INCOMPLETE,)
    await v.aclose()


def test_signature_not_ready_three_times_then_verified(emu: Emulator) -> None:
    emu.set_faults(Faults(signature_not_ready=3), model=MODEL)
    v = verifier(emu)
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=CANARY, http_client=v.http_client())
    tag = v.recorder.new_tag()
    sdk.chat.completions.create(model=MODEL, messages=MSG, extra_headers={CAPTURE_HEADER: tag})
    receipt = v.verify_exchange(v.recorder.take(tag))
    assert receipt.signature_attempts == 4
    assert_server_hashes(receipt.result)


def test_tampered_response_fails_with_hash_mismatch(emu: Emulator) -> None:
    emu.set_faults(Faults(tamper_response="alter"), model=MODEL)
    v = verifier(emu)
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=CANARY, http_client=v.http_client())
    tag = v.recorder.new_tag()
    sdk.chat.completions.create(model=MODEL, messages=MSG, extra_headers={CAPTURE_HEADER: tag})
    result = v.verify(v.recorder.take(tag))
    assert result.status is Status.FAILED and Reason.RESPONSE_HASH_MISMATCH in result.reasons


async def test_200_concurrent_exchanges_get_their_own_verdicts(emu: Emulator) -> None:
    v = verifier(emu)
    sdk = openai.AsyncOpenAI(
        base_url=emu.base_url, api_key=CANARY, http_client=v.async_http_client(), max_retries=0
    )

    async def one(i: int) -> tuple[str, str | None, Status]:
        tag = v.recorder.new_tag()
        out = await sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"q{i}"}],
            extra_headers={CAPTURE_HEADER: tag},
        )
        result = await v.averify(v.recorder.take(tag))
        return out.id, result.chat_id, result.status

    got = await asyncio.gather(*[one(i) for i in range(200)])
    assert len({chat_id for chat_id, _, _ in got}) == 200
    assert all(
        chat_id == verified_id and status is Status.VERIFIED for chat_id, verified_id, status in got
    )
    assert emu.stats.attestation_fetches == 1
    await v.aclose()


def test_100_concurrent_first_calls_fetch_attestation_once(emu: Emulator) -> None:
    v = verifier(emu)
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=CANARY, http_client=v.http_client())
    exchanges = []
    for _ in range(10):
        tag = v.recorder.new_tag()
        sdk.chat.completions.create(model=MODEL, messages=MSG, extra_headers={CAPTURE_HEADER: tag})
        exchanges.extend([v.recorder.take(tag)] * 10)  # 100 calls, the attestation cache is cold
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(v.verify, exchanges))
    assert all(r.status is Status.VERIFIED for r in results)
    assert emu.stats.attestation_fetches == 1 and emu.stats.nras_calls == 1


def test_receipt_reverifies_offline_and_detects_one_changed_byte(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = verifier(emu, tmp_path)
    sdk = openai.OpenAI(base_url=emu.base_url, api_key=CANARY, http_client=v.http_client())
    tag = v.recorder.new_tag()
    sdk.chat.completions.create(
        model=MODEL, messages=MSG, stream=True, extra_headers={CAPTURE_HEADER: tag}
    ).close()
    tag2 = v.recorder.new_tag()
    for _ in sdk.chat.completions.create(
        model=MODEL, messages=MSG, stream=True, extra_headers={CAPTURE_HEADER: tag2}
    ):
        pass
    original = v.verify(v.recorder.take(tag2))
    assert original.verified
    stored = v.receipt_store.get(original.receipt_id or "")  # type: ignore[union-attr]
    assert stored is not None
    receipt = Receipt.from_json(stored.to_json())

    def no_network(*args: object) -> None:
        raise AssertionError("reverify touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    again = reverify(receipt, trust=emu.trust)
    assert (again.status, again.reasons, dict(again.checks)) == (
        original.status,
        original.reasons,
        dict(original.checks),
    )
    assert reverify(receipt).status is not Status.VERIFIED  # production anchors by default

    body = bytearray(receipt.response_body or b"")
    body[len(body) // 2] ^= 0x01
    tampered = reverify(_replace(receipt, response_body=bytes(body)), trust=emu.trust)
    assert tampered.status is Status.FAILED
    assert tampered.reasons == (Reason.RESPONSE_HASH_MISMATCH,)
    req = bytearray(receipt.request_body or b"")
    req[-2] ^= 0x01
    assert reverify(_replace(receipt, request_body=bytes(req)), trust=emu.trust).reasons == (
        Reason.REQUEST_HASH_MISMATCH,
    )


def _replace(receipt: Receipt, **changes: object) -> Receipt:
    import dataclasses

    return dataclasses.replace(receipt, **changes)  # type: ignore[arg-type]
