"""Exact-byte capture through mock transports: JSON/SSE, sync/async, gzip, early stop, caps."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from redpill_integrations.results import Reason
from redpill_integrations.wire import (
    CAPTURE_HEADER,
    AsyncCapturingTransport,
    CapturingTransport,
    ExchangeRecorder,
)

BASE = "https://api.example.test/v1"
REQ = b'{"model": "phala/m",  "messages": [{"role": "user", "content": "hi"}]}'
JSON_BODY = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}\n'
SSE_EVENTS = [
    b'data: {"id":"chatcmpl-s","choices":[{"delta":{"content":"a"}}]}\n\n',
    b'data: {"id":"chatcmpl-s","choices":[{"delta":{"content":"b"}}]}\n\n',
    b"data: [DONE]\n\n",
]
SSE_BODY = b"".join(SSE_EVENTS)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class SyncChunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes], tail_sleep: float = 0.0) -> None:
        self.chunks, self.tail_sleep, self.closed = chunks, tail_sleep, False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.tail_sleep:
            time.sleep(self.tail_sleep)
            yield b'data: {"late": true}\n\n'

    def close(self) -> None:
        self.closed = True


class AsyncChunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


def handler_for(
    body: bytes,
    *,
    sse: bool,
    gzip_it: bool = False,
    seen: list[httpx.Request] | None = None,
    tail_sleep: float = 0.0,
):  # type: ignore[no-untyped-def]
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        headers = {"content-type": "text/event-stream" if sse else "application/json"}
        payload = gzip.compress(body) if gzip_it else body
        if gzip_it:
            headers["content-encoding"] = "gzip"
        chunks = [payload[i : i + 7] for i in range(0, len(payload), 7)]
        return httpx.Response(200, headers=headers, stream=SyncChunks(chunks, tail_sleep))

    return handle


def client(rec: ExchangeRecorder, handler, max_bytes: int = 1 << 20) -> httpx.Client:  # type: ignore[no-untyped-def]
    t = CapturingTransport(
        httpx.MockTransport(handler), base_url=BASE, recorder=rec, max_response_bytes=max_bytes
    )
    return httpx.Client(transport=t)


@pytest.mark.parametrize("gzip_it", [False, True])
@pytest.mark.parametrize(("body", "sse"), [(JSON_BODY, False), (SSE_BODY, True)])
def test_sync_capture_bytes_equal_server(body: bytes, sse: bool, gzip_it: bool) -> None:
    rec, seen = ExchangeRecorder(), []
    with client(rec, handler_for(body, sse=sse, gzip_it=gzip_it, seen=seen)) as c:
        r = c.post(f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "t1"})
        assert r.content == body  # the consumer still gets decoded content
    ex = rec.take("t1")
    assert ex is not None and ex.complete and ex.problem is None
    assert sha(ex.response_body) == sha(body) and sha(ex.request_body) == sha(REQ)
    assert ex.streamed is sse
    assert ex.chat_id == ("chatcmpl-s" if sse else "chatcmpl-1") and ex.model == "phala/m"
    assert CAPTURE_HEADER not in seen[0].headers
    assert seen[0].headers["accept-encoding"] == "identity"
    assert rec.take("t1") is None


@pytest.mark.parametrize("gzip_it", [False, True])
async def test_async_capture_sse_bytes_equal_server(gzip_it: bool) -> None:
    rec = ExchangeRecorder()
    payload = gzip.compress(SSE_BODY) if gzip_it else SSE_BODY

    async def handle(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        if gzip_it:
            headers["content-encoding"] = "gzip"
        chunks = [payload[i : i + 5] for i in range(0, len(payload), 5)]
        return httpx.Response(200, headers=headers, stream=AsyncChunks(chunks))

    t = AsyncCapturingTransport(
        httpx.MockTransport(handle), base_url=BASE, recorder=rec, max_response_bytes=1 << 20
    )
    async with httpx.AsyncClient(transport=t) as c:
        async with c.stream(
            "POST", f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "a"}
        ) as r:
            got = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert got == SSE_BODY
    ex = rec.take("a")
    assert ex is not None and ex.complete and sha(ex.response_body) == sha(SSE_BODY)
    assert rec.take("a") is None and len(rec) == 0 and rec.retained_bytes == 0


def test_close_after_done_reads_remainder_and_completes() -> None:
    rec = ExchangeRecorder()
    with client(rec, handler_for(SSE_BODY, sse=True)) as c:
        with c.stream(
            "POST", f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "d"}
        ) as r:
            buf = b""
            for chunk in r.iter_raw():  # stop like the OpenAI SDK right after [DONE]
                buf += chunk
                if b"[DONE]" in buf:
                    break
    ex = rec.take("d")
    assert ex is not None and ex.complete and ex.response_body == SSE_BODY


def test_early_break_returns_at_once_and_is_incomplete() -> None:
    rec = ExchangeRecorder()
    with client(rec, handler_for(SSE_BODY[:80], sse=True, tail_sleep=5.0)) as c:
        start = time.monotonic()
        with c.stream(
            "POST", f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "e"}
        ) as r:
            for _ in r.iter_raw():
                break
        assert time.monotonic() - start < 1.0
    ex = rec.take("e")
    assert ex is not None and not ex.complete and ex.problem is Reason.STREAM_INCOMPLETE


def test_stream_ending_without_done_is_incomplete() -> None:
    rec = ExchangeRecorder()
    with client(rec, handler_for(SSE_EVENTS[0], sse=True)) as c:
        c.post(f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "n"})
    ex = rec.take("n")
    assert ex is not None and ex.problem is Reason.STREAM_INCOMPLETE


def test_size_cap_stops_recording_but_not_delivery() -> None:
    rec = ExchangeRecorder()
    with client(rec, handler_for(SSE_BODY, sse=True), max_bytes=40) as c:
        r = c.post(f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "big"})
        assert r.content == SSE_BODY
    ex = rec.take("big")
    assert ex is not None and ex.problem is Reason.RESPONSE_TOO_LARGE and not ex.complete


def test_other_requests_pass_through_unrecorded() -> None:
    rec, seen = ExchangeRecorder(), []
    with client(rec, handler_for(JSON_BODY, sse=False, seen=seen)) as c:
        c.get(f"{BASE}/models", headers={CAPTURE_HEADER: "x"})
        c.post("https://other.test/v1/chat/completions", content=REQ, headers={CAPTURE_HEADER: "y"})
    assert rec.take("x") is None and rec.take("y") is None and len(rec) == 0
    assert all(CAPTURE_HEADER not in r.headers for r in seen)


def test_last_attempt_wins_and_store_is_bounded() -> None:
    rec = ExchangeRecorder(max_exchanges=3)
    bodies = iter([b'{"id":"chatcmpl-first"}', b'{"id":"chatcmpl-second"}'])

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=json.loads(next(bodies)))

    with client(rec, handle) as c:
        for _ in range(2):
            c.post(f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "r"})
    ex = rec.take("r")
    assert ex is not None and ex.chat_id == "chatcmpl-second"
    with client(rec, handler_for(JSON_BODY, sse=False)) as c:
        for i in range(5):
            c.post(f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: f"b{i}"})
    assert len(rec) == 3 and rec.take("b0") is None and rec.take("b4") is not None


def test_user_client_is_kept_and_its_hooks_run() -> None:
    rec, hooked = ExchangeRecorder(), []
    user = httpx.Client(
        transport=httpx.MockTransport(handler_for(JSON_BODY, sse=False)),
        event_hooks={"request": [lambda req: hooked.append(req.url.path)]},
    )
    t = CapturingTransport(user, base_url=BASE, recorder=rec, max_response_bytes=1 << 20)
    with httpx.Client(transport=t) as c:
        assert (
            c.post(f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "u"}).content
            == JSON_BODY
        )
        assert c.get(f"{BASE}/models").status_code == 200
    assert hooked == ["/v1/chat/completions", "/v1/models"]
    ex = rec.take("u")
    assert ex is not None and ex.response_body == JSON_BODY


DOC_SSE = (
    Path(__file__).parents[2] / "vectors" / "phala_doc_2025-09_response_body_as_published.sse"
).read_bytes()


@pytest.mark.parametrize(
    ("body", "chat_id"),
    [
        (DOC_SSE, "chatcmpl-aae3e785047c4c229e40df4ff639b956"),
        (b': keep-alive\r\n\r\ndata:{"id":"chatcmpl-x"}\r\n\r\ndata:[DONE]\r\n\r\n', "chatcmpl-x"),
    ],
)
def test_sse_id_and_done_detection_on_real_layouts(body: bytes, chat_id: str) -> None:
    rec = ExchangeRecorder()
    with client(rec, handler_for(body, sse=True)) as c:
        with c.stream(
            "POST", f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "v"}
        ) as r:
            buf = b""
            for chunk in r.iter_raw():
                buf += chunk
                if b"[DONE]" in buf:
                    break
    ex = rec.take("v")
    assert ex is not None and ex.complete and ex.chat_id == chat_id and ex.response_body == body


def test_endless_data_after_done_is_bounded_and_malformed() -> None:
    rec = ExchangeRecorder()
    with client(rec, handler_for(SSE_BODY + b": junk\n" * 20_000, sse=True)) as c:
        with c.stream(
            "POST", f"{BASE}/chat/completions", content=REQ, headers={CAPTURE_HEADER: "j"}
        ) as r:
            buf = b""
            for chunk in r.iter_raw():
                buf += chunk
                if b"[DONE]" in buf:
                    break
    ex = rec.take("j")
    assert ex is not None and ex.problem is Reason.MALFORMED_RESPONSE and not ex.complete


async def test_capturing_clients_refuse_json_nested_too_deeply_before_parsing() -> None:
    from redpill_integrations.wire import RedpillVerifier

    deep = b"[" * 100_000 + b"]" * 100_000

    def handle(request: httpx.Request) -> httpx.Response:
        body = deep if request.url.path.endswith("/deep") else b'{"ok": [1, {"a": 2}]}'
        return httpx.Response(200, content=body)

    verifier = RedpillVerifier(base_url="https://api.example.test/v1", api_key="k")
    with verifier.http_client(inner=httpx.MockTransport(handle)) as client:
        assert client.get("https://api.example.test/v1/fine").json() == {"ok": [1, {"a": 2}]}
        with pytest.raises(ValueError, match="nests deeper"):
            client.get("https://api.example.test/v1/deep").json()
    async with verifier.async_http_client(inner=httpx.MockTransport(handle)) as aclient:
        with pytest.raises(ValueError, match="nests deeper"):
            (await aclient.get("https://api.example.test/v1/deep")).json()
