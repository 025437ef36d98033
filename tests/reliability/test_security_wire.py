"""Security review 1, wire-layer findings: each test fails on the code before its fix.

* V1: ``RedpillCallbackHandler`` with a plain ``ChatOpenAI`` attributed a verdict by the
  server-chosen response id. A gateway re-used the id of a genuine exchange on fabricated
  content the capture did not file (raw deflate starting ``0x78``; a body over the cap) and got
  ``verified``.
* V4: a sync fetch whose *headers* drip held ``verify()`` (and single-flight waiters) for as long as
  the server liked.
* V5: a stream held open after ``[DONE]`` stalled every streamed call.
* V6: the recorder kept every exchange's bodies after use.
* V11: ``http://`` base URLs for remote hosts were accepted (the key in clear text).
* V14: a zstd bomb on the chat allocated far past the capture cap.
* V15: trust anchors were "production" because their label said so.
* I3: a duplicate key in a signature answer was retried for the whole budget as malformed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from redpill_integrations import ReceiptStore, RedpillVerifier
from redpill_integrations.emulator import Emulator
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.langchain import ChatRedpill, RedpillCallbackHandler
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, CapturingTransport, ExchangeRecorder

from ._hostile import Action, Hostile, Req, answer, head
from .conftest import MODEL, assert_exchange, call

zstandard = pytest.importorskip("zstandard")  # httpx's optional zstd decoder; in the dev venv

FABRICATED = "FABRICATED by the gateway: the dosage is 50 mg (ten times the real one)."


@pytest.fixture
def hostile(emu: Emulator) -> Iterator[Hostile]:
    server = Hostile(emu).start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReceiptStore]:
    s = ReceiptStore(tmp_path / "receipts.sqlite3")
    yield s
    s.close()


def verifier_for(
    emu: Emulator, base_url: str, store: ReceiptStore | None = None, **policy: Any
) -> RedpillVerifier:
    """A verifier with its *default* transports (what users get), on the emulator's trust."""
    return RedpillVerifier(
        base_url=base_url,
        api_key=emu.api_key,
        trust=emu.trust,
        receipt_store=store,
        policy=VerificationPolicy(**{"signature_deadline": 5.0, **policy}),
    )


def chat_body(chat_id: str, content: str, pad: int = 0) -> bytes:
    body = {
        "id": chat_id,
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return json.dumps(body).encode() + b" " * pad


def raw_deflate_starting_0x78(data: bytes) -> bytes:
    """Raw deflate (RFC 1951) whose first byte is 0x78, the zlib magic: a stored block whose
    header byte's padding bits spell 0x78, then the rest compressed. Not a valid zlib header, so
    httpx (the SDK) falls back to raw deflate and parses it; the old capture called it malformed."""
    n = 10
    rest = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = b"\x78" + struct.pack("<HH", n, n ^ 0xFFFF) + data[:n]
    out += rest.compress(data[n:]) + rest.flush()
    assert (0x78 * 256 + out[1]) % 31 != 0 and zlib.decompress(out, -zlib.MAX_WBITS) == data
    return out


def plain_chat_openai(base_url: str, emu: Emulator, verifier: RedpillVerifier) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=base_url,
        api_key=emu.api_key,  # type: ignore[arg-type]
        http_client=verifier.http_client(),
        http_async_client=verifier.async_http_client(),
        max_retries=0,
    )


# -- V1: the callback handler verifies the exchange of *its* call ----------------------------------

V1_VARIANTS = {
    # the fabricated body is captured now (deflate decoded as httpx does): its bytes are verified
    "deflate": (Status.FAILED, (Reason.REQUEST_HASH_MISMATCH, Reason.RESPONSE_HASH_MISMATCH)),
    # over the capture cap: the capture problem is the verdict
    "huge": (Status.UNVERIFIABLE, (Reason.RESPONSE_TOO_LARGE,)),
}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("variant", list(V1_VARIANTS))
async def test_v1_reused_id_on_fabricated_content_is_not_verified(
    emu: Emulator, hostile: Hostile, store: ReceiptStore, variant: str, asynchronous: bool
) -> None:
    cap = 64 * 1024
    verifier = verifier_for(emu, hostile.base_url, store, max_response_bytes=cap)
    handler = RedpillCallbackHandler(verifier=verifier)
    llm = plain_chat_openai(hostile.base_url, emu, verifier)
    config: Any = {"callbacks": [handler]}

    async def invoke(prompt: str) -> Any:
        if asynchronous:
            return await llm.ainvoke(prompt, config=config)
        return await asyncio.to_thread(llm.invoke, prompt, config=config)

    genuine = await invoke("What dosage should the patient take?")
    genuine_id = genuine.response_metadata["id"]
    if variant == "deflate":
        body = raw_deflate_starting_0x78(chat_body(genuine_id, FABRICATED))
        act = answer(200, body, extra={"Content-Encoding": "deflate"})
    else:
        act = answer(200, chat_body(genuine_id, FABRICATED, pad=cap + 1))
    hostile.route = lambda req: act if req.path == "/v1/chat/completions" else None
    forged = await invoke("And the dosage for a child?")

    # the attack reached the caller: fabricated content under the genuine exchange's id
    assert forged.content == FABRICATED and forged.response_metadata["id"] == genuine_id
    status, reasons = V1_VARIANTS[variant]
    assert [(r.status, r.reasons) for r in handler.results] == [
        (Status.VERIFIED, ()),
        (status, reasons),
    ]
    assert handler.all_verified is False and len(store) == 2
    # V6: nothing is kept once used
    assert len(verifier.recorder) == 0 and verifier.recorder.retained_bytes == 0
    verifier.close()


def test_v1_handler_never_uses_an_exchange_of_another_call(
    emu: Emulator, hostile: Hostile, store: ReceiptStore
) -> None:
    """A call whose exchange was not captured (a client outside the verifier) is unverifiable,
    even when an earlier captured exchange carries the very same response id."""
    verifier = verifier_for(emu, hostile.base_url, store)
    handler = RedpillCallbackHandler(verifier=verifier)
    config: Any = {"callbacks": [handler]}
    genuine = plain_chat_openai(hostile.base_url, emu, verifier).invoke("hi", config=config)
    replay = answer(200, chat_body(genuine.response_metadata["id"], FABRICATED))
    hostile.route = lambda req: replay if req.path == "/v1/chat/completions" else None
    uncaptured = ChatOpenAI(
        model=MODEL,
        base_url=hostile.base_url,
        api_key=emu.api_key,  # type: ignore[arg-type]
        max_retries=0,
    )
    uncaptured.invoke("hi", config=config)
    assert [(r.status, r.reasons) for r in handler.results] == [
        (Status.VERIFIED, ()),
        (Status.UNVERIFIABLE, (Reason.CHECK_NOT_RUN,)),
    ]
    verifier.close()


# -- V4: the sync fetch is bounded from connect to last byte ---------------------------------------


def header_drip(seconds: float, interval: float = 0.1) -> Action:
    """A status line, then one header byte per ``interval``: the headers never complete."""

    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: ")
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            w.write(b"a")
            await w.drain()
            await asyncio.sleep(interval)

    return act


def captured_exchange(verifier: RedpillVerifier, base_url: str, prompt: str) -> Any:
    client = openai.OpenAI(
        base_url=base_url, api_key="sk-x", http_client=verifier.http_client(), max_retries=0
    )
    tag = verifier.recorder.new_tag()
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt}],
        extra_headers={CAPTURE_HEADER: tag},
    )
    return verifier.recorder.take(tag)


def test_v4_signature_headers_dripping_end_in_timeout_within_the_deadline(
    emu: Emulator, hostile: Hostile
) -> None:
    verifier = verifier_for(emu, hostile.base_url, signature_deadline=1.0)
    exchange = captured_exchange(verifier, hostile.base_url, "slowloris")
    drip = header_drip(8.0)
    hostile.route = lambda req: drip if req.path.startswith("/v1/signature/") else None
    started = time.monotonic()
    result = verifier.verify(exchange)
    elapsed = time.monotonic() - started
    assert (result.status, result.reasons) == (Status.UNVERIFIABLE, (Reason.TIMEOUT,))
    assert elapsed < 2.0, elapsed
    verifier.close()


def test_v4_report_headers_dripping_bound_the_fetching_thread_and_its_waiters(
    emu: Emulator, hostile: Hostile
) -> None:
    verifier = verifier_for(emu, hostile.base_url, attestation_deadline=1.0)
    exchanges = [captured_exchange(verifier, hostile.base_url, f"q{i}") for i in range(2)]
    drip = header_drip(8.0)
    hostile.route = lambda req: drip if req.path == "/v1/attestation/report" else None
    results: dict[int, Any] = {}
    took: dict[int, float] = {}

    def run(i: int) -> None:
        started = time.monotonic()
        results[i] = verifier.verify(exchanges[i])
        took[i] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.2)  # the second thread waits on the first one's report fetch
    for t in threads:
        t.join(20)
    reports = [q for q in hostile.log if q.path == "/v1/attestation/report"]
    assert len(reports) == 1  # single-flight: one fetch, one waiter
    assert [(r.status, r.reasons) for r in results.values()] == [
        (Status.UNVERIFIABLE, (Reason.TIMEOUT,))
    ] * 2
    assert max(took.values()) < 2.5, took
    verifier.close()


# -- V5: a stream held open after [DONE] ----------------------------------------------------------


def held_open(hostile: Hostile, mode: str, seconds: float = 6.0) -> Action:
    """Forward the chat to the emulator, send its SSE stream as one chunk (with ``: ping`` right
    after ``[DONE]`` in ping mode), then keep the connection open: idle, or pinging every 50 ms."""

    async def act(req: Req, w: asyncio.StreamWriter) -> None:
        skip = {"host", "content-length", "connection", "transfer-encoding"}
        got = await hostile._client.request(
            req.method,
            req.target,
            content=req.body,
            headers={k: v for k, v in req.headers.items() if k not in skip},
        )
        body = got.content + (b": ping\n\n" if mode == "ping" else b"")
        w.write(
            head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})
            + b"%x\r\n%s\r\n" % (len(body), body)
        )
        await w.drain()
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await asyncio.sleep(0.05)
            if mode == "ping":
                w.write(b"8\r\n: ping\n\n\r\n")
                await w.drain()

    return act


V5_VERDICTS = {
    "idle": ("verified", ()),
    # bytes after [DONE] that the server did not sign: what was received is what is verified
    "ping": ("failed", ("RESPONSE_HASH_MISMATCH",)),
}


@pytest.mark.parametrize("mode", list(V5_VERDICTS))
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_v5_stream_held_open_after_done_returns_about_as_fast_as_plain(
    emu: Emulator, hostile: Hostile, rig: Any, mode: str, asynchronous: bool
) -> None:
    route = held_open(hostile, mode)
    hostile.route = lambda req: route if req.path == "/v1/chat/completions" else None
    plain = openai.OpenAI(base_url=hostile.base_url, api_key="sk-x", max_retries=0)
    started = time.monotonic()
    stream = plain.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "plain"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    plain_took = time.monotonic() - started

    # the rig's clients are the user's own (plain httpx transports under the capture): the
    # watchdog path; the default transports (deadline path) are covered below
    r = rig("lc", base_url=hostile.base_url, real_time=True)
    started = time.monotonic()
    if asynchronous:
        from .conftest import acall

        out = await acall(r, "held open", stream=True)
    else:
        out = await asyncio.to_thread(call, r, "held open", stream=True)
    took = time.monotonic() - started
    assert_exchange(r, out, *V5_VERDICTS[mode])
    assert took < plain_took + 1.5, (took, plain_took)


@pytest.mark.parametrize("mode", list(V5_VERDICTS))
def test_v5_default_transport_drain_is_bounded(emu: Emulator, hostile: Hostile, mode: str) -> None:
    route = held_open(hostile, mode)
    hostile.route = lambda req: route if req.path == "/v1/chat/completions" else None
    verifier = verifier_for(emu, hostile.base_url)
    client = openai.OpenAI(
        base_url=hostile.base_url, api_key="sk-x", http_client=verifier.http_client(), max_retries=0
    )
    tag = verifier.recorder.new_tag()
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "held open"}],
        stream=True,
        extra_headers={CAPTURE_HEADER: tag},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    took = time.monotonic() - started
    result = verifier.verify(verifier.recorder.take(tag))
    assert text and took < 1.0, took
    status, reasons = V5_VERDICTS[mode]
    assert (result.status.value, tuple(r.value for r in result.reasons)) == (status, reasons)
    verifier.close()


# -- V6: the recorder keeps nothing it does not have to --------------------------------------------

BASE = "https://gw.example/v1"


def capturing_client(rec: ExchangeRecorder, respond: Any, cap: int = 1 << 20) -> httpx.Client:
    transport = CapturingTransport(
        httpx.MockTransport(respond), base_url=BASE, recorder=rec, max_response_bytes=cap
    )
    return httpx.Client(transport=transport)


def test_v6_recorder_bounds_bytes_drops_untagged_and_late_exchanges() -> None:
    rec = ExchangeRecorder(max_bytes=250 * 1024)
    big = chat_body("chatcmpl-big", "x", pad=100 * 1024)
    with capturing_client(rec, lambda request: httpx.Response(200, content=big)) as c:
        c.post(f"{BASE}/chat/completions", content=b'{"model": "phala/m"}')  # no tag
        assert len(rec) == 0 and rec.retained_bytes == 0
        for tag in ("a", "b", "c"):
            c.post(f"{BASE}/chat/completions", content=b"{}", headers={CAPTURE_HEADER: tag})
        assert len(rec) == 2 and rec.retained_bytes <= 250 * 1024  # "a" went first
        assert rec.take("a") is None and rec.take("b") is not None
        c.post(f"{BASE}/chat/completions", content=b"{}", headers={CAPTURE_HEADER: "b"})
        assert rec.take("b") is None  # filed after its tag was taken: dropped
        token = rec.bind_tag("bound")
        try:
            c.post(f"{BASE}/chat/completions", content=b"{}")
        finally:
            from redpill_integrations.wire.recorder import _BOUND

            _BOUND.reset(token)
        assert (ex := rec.take("bound")) is not None and ex.response_body == big
        assert rec.take("c") is not None
    assert len(rec) == 0 and rec.retained_bytes == 0


# -- V11: no clear-text key to remote hosts --------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.redpill.ai/v1", "http://10.0.0.5:8000/v1", "http://127.evil.example/v1"]
)
def test_v11_plain_http_is_refused_for_remote_hosts(url: str) -> None:
    with pytest.raises(ConfigurationError, match="https://"):
        RedpillVerifier(base_url=url, api_key="sk-x")
    with pytest.raises(Exception, match="https://"):
        ChatRedpill(model=MODEL, base_url=url, api_key="sk-x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/v1", "http://localhost:1/v1", "http://[::1]:8/v1"]
)
def test_v11_plain_http_is_accepted_on_loopback(url: str) -> None:
    RedpillVerifier(base_url=url, api_key="sk-x").close()


# -- V14: decompression bombs in the capture path --------------------------------------------------


class _Chunks(httpx.SyncByteStream):
    """A streamed body (``content=`` would make httpx decode the whole bomb when built)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self._body), 4096):
            yield self._body[i : i + 4096]


def _read_raw_through_capture(encoding: str, body: bytes, cap: int) -> Any:
    rec = ExchangeRecorder()
    headers = {"content-type": "application/json", "content-encoding": encoding}
    respond = lambda request: httpx.Response(200, headers=headers, stream=_Chunks(body))  # noqa: E731
    with capturing_client(rec, respond, cap) as c:
        with c.stream(
            "POST", f"{BASE}/chat/completions", content=b"{}", headers={CAPTURE_HEADER: "t"}
        ) as response:
            for _ in response.iter_raw():  # the consumer's decoding is the consumer's business
                pass
    return rec.take("t")


def test_v14_zstd_bomb_stops_at_the_cap_without_inflating() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (256 << 20))
    assert len(bomb) < 64 * 1024
    tracemalloc.start()
    try:
        exchange = _read_raw_through_capture("zstd", bomb, cap=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exchange.problem is Reason.RESPONSE_TOO_LARGE and exchange.response_body == b""
    assert peak < 8 << 20, peak  # was 512 MiB


def test_v14_zstd_within_the_cap_is_recorded_decoded() -> None:
    body = chat_body("chatcmpl-z", "zstd is fine")
    exchange = _read_raw_through_capture("zstd", zstandard.ZstdCompressor().compress(body), 1 << 20)
    assert exchange.problem is None and exchange.response_body == body


def test_v14_unbounded_encoding_stops_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    from httpx import _decoders

    monkeypatch.setitem(_decoders.SUPPORTED_DECODERS, "br", _decoders.IdentityDecoder)
    exchange = _read_raw_through_capture("br", b"\x1b anything", 1 << 20)
    assert exchange.problem is Reason.RESPONSE_TOO_LARGE and exchange.response_body == b""


# -- V15: production is what the values say --------------------------------------------------------


def test_v15_production_label_on_foreign_anchors_is_not_production(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    forged = {**emu.trust_dict(), "kind": "production"}
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        anchors = TrustAnchors.from_dict(forged)
        chat = ChatRedpill(model=MODEL, base_url=emu.base_url, api_key="sk-x", trust=forged)  # type: ignore[arg-type]
    assert anchors.is_production is False and anchors.kind == "custom"
    assert chat.trust.is_production is False and chat.trust.kind == "custom"
    assert "labelled 'production'" in caplog.text and "custom Intel root CA" in caplog.text
    assert "NON-PRODUCTION" in caplog.text


def test_v15_any_non_production_anchors_warn_when_used(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        RedpillVerifier(base_url=emu.base_url, trust=TrustAnchors()).close()
        assert caplog.text == ""  # production: silent
        RedpillVerifier(
            base_url=emu.base_url, trust=TrustAnchors(kind="staging", pccs_url="https://pccs.x")
        ).close()
    assert "NON-PRODUCTION" in caplog.text and "pccs_url=https://pccs.x" in caplog.text
    assert TrustAnchors(kind="anything").is_production is True  # the values are production's


# -- I3: duplicate keys in a signature answer fail at once -----------------------------------------


def test_i3_duplicate_key_in_signature_fails_without_retrying(
    emu: Emulator, hostile: Hostile
) -> None:
    dup = answer(200, b'{"text": "x:y", "text": "a:b", "signature": "00", "signing_algo": "ecdsa"}')
    verifier = verifier_for(emu, hostile.base_url, signature_deadline=30.0)
    exchange = captured_exchange(verifier, hostile.base_url, "dup")
    hostile.route = lambda req: dup if req.path.startswith("/v1/signature/") else None
    started = time.monotonic()
    receipt = verifier.verify_exchange(exchange)
    assert (receipt.result.status, receipt.result.reasons) == (
        Status.FAILED,
        (Reason.DUPLICATE_JSON_KEY,),
    )
    assert receipt.signature_attempts == 1 and time.monotonic() - started < 2.0
    verifier.close()


# -- captured headers (for ACI) --------------------------------------------------------------------


def test_captured_headers_are_the_allowlist_lower_cased() -> None:
    rec = ExchangeRecorder()
    headers = [
        ("X-ACI-Version", "1"),
        ("X-Aci-Keyset-Digest", "sha256:ab"),
        ("X-Receipt-Id", "r-1"),
        ("X-ACI-Identity", "id"),
        ("Content-Type", "application/json"),
        ("Set-Cookie", "session=secret"),
        ("X-Other", "no"),
    ]
    respond = lambda request: httpx.Response(200, headers=headers, content=b"{}")  # noqa: E731
    with capturing_client(rec, respond) as c:
        c.post(f"{BASE}/chat/completions", content=b"{}", headers={CAPTURE_HEADER: "h"})
    exchange = rec.take("h")
    assert exchange is not None and dict(exchange.headers) == {
        "x-aci-version": "1",
        "x-aci-keyset-digest": "sha256:ab",
        "x-receipt-id": "r-1",
        "x-aci-identity": "id",
        "content-type": "application/json",
    }


def test_v15_production_also_means_the_production_kms_roots_and_aci_app_ids() -> None:
    from redpill_integrations.policy import PRODUCTION_ACI_APP_IDS, PRODUCTION_KMS_ROOT_PUBKEYS

    narrowed = TrustAnchors(
        kms_root_pubkeys=PRODUCTION_KMS_ROOT_PUBKEYS, aci_app_ids=PRODUCTION_ACI_APP_IDS
    )
    assert narrowed.is_production and narrowed.kind == "production"
    own_root = TrustAnchors(kms_root_pubkeys=("02" + "11" * 32,))
    own_app = TrustAnchors(aci_app_ids=("22" * 20,))
    assert (own_root.is_production, own_root.kind) == (False, "custom")
    assert (own_app.is_production, own_app.kind) == (False, "custom")
    assert own_root.differences() == ("custom kms_root_pubkeys",)
    assert own_app.differences() == ("custom aci_app_ids",)
