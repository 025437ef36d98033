"""Exact-byte capture of chat-completion exchanges, as httpx transports handed to the OpenAI SDK.

Which requests: only ``POST {base_url}/chat/completions``; everything else passes through
untouched. For a captured request the transport

* strips ``CAPTURE_HEADER`` (the correlation tag) and sends ``Accept-Encoding: identity``;
* records the request body exactly as sent and the model named in it;
* wraps the response stream: every chunk is recorded *as the consumer reads it* and passed on
  at once (no buffering, no event hooks, time to first token unchanged). A server that compresses
  anyway is decoded for the record with a bound (gzip/deflate/zstd, decoded as httpx decodes them,
  :mod:`.decoding`); an encoding that cannot be decoded with a bound (``br``) stops the recording
  (``RESPONSE_TOO_LARGE``). The consumer still gets the raw stream, which its client decodes;
* finalizes on end of stream or close. The OpenAI SDK stops reading at ``data: [DONE]`` and closes:
  if ``[DONE]`` was seen, the remainder is read for at most ``_DRAIN_SECONDS`` and
  ``_DRAIN_LIMIT`` bytes; a server that keeps the connection open past that is cut off, the
  exchange finalized as received, the connection closed (a plain client would not wait either). If
  the consumer stopped earlier, the exchange is finalized at once as incomplete
  (``STREAM_INCOMPLETE``), without draining the rest of a long stream.
* caps the record at ``max_response_bytes``: beyond it recording stops (``RESPONSE_TOO_LARGE``) but
  every byte still reaches the consumer.
* keeps, lower-cased, only the response headers a verifier needs (:data:`CAPTURED_HEADERS`).

Correlation is by a tag the caller chose, never by the server's response id: a caller adds the
header ``CAPTURE_HEADER: <tag>`` to the request (``extra_headers=`` in the OpenAI SDK; a tag from
:meth:`ExchangeRecorder.new_tag`), which the transport strips before sending, or binds a tag to the
current context (:meth:`ExchangeRecorder.bind_tag`). The exchange is filed under the tag (the last
attempt wins); a request without a tag is passed through and not recorded. ``chat_id`` (the JSON
``id`` or the first SSE event's ``id``) is what the signature is fetched by, nothing more.

A user's own ``httpx.Client`` can be the inner layer: requests are forwarded through its public
``send(request, stream=True)``, so its proxies, hooks and auth keep working.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import httpx

from redpill_integrations.results import Reason
from redpill_integrations.verify.encoding import loads_or_none
from redpill_integrations.wire.deadline import cut_off_after, deadline_in
from redpill_integrations.wire.decoding import DecodeOverflow, UnsupportedEncoding, decoder_for
from redpill_integrations.wire.recorder import ExchangeRecorder

__all__ = [
    "CAPTURED_HEADERS",
    "CAPTURE_HEADER",
    "AsyncCapturingTransport",
    "CapturedExchange",
    "CapturingTransport",
    "ExchangeRecorder",
]

CAPTURE_HEADER = "x-redpill-capture-tag"
_DONE = b"data: [DONE]"
_DONES = (_DONE, b"data:[DONE]")  # the SSE field value may follow "data:" with or without a space
_DRAIN_LIMIT = 64 * 1024  # what may follow [DONE] before we call the stream malformed
_DRAIN_SECONDS = 0.25  # how long we wait for the end of a stream after [DONE]
_READ_FAILURES = (httpx.HTTPError, httpx.StreamError, OSError)
#: The response headers kept in :attr:`CapturedExchange.headers` (lower-cased): what verifiers
#: read (ACI receipt headers, the body's encoding and type). Nothing else is kept.
CAPTURED_HEADERS = frozenset(
    {
        "x-aci-version",
        "x-aci-keyset-digest",
        "x-receipt-id",
        "x-aci-identity",
        "content-encoding",
        "content-type",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class CapturedExchange:
    """One chat-completion attempt, bytes exactly as sent and received."""

    tag: str | None
    url: str
    request_body: bytes
    response_body: bytes  # after content decoding; the whole SSE stream when streamed
    status_code: int
    streamed: bool
    complete: bool  # False: stream ended before [DONE], consumer stopped early, body over the cap
    chat_id: str | None
    model: str | None  # from the request body
    started_at: datetime
    finished_at: datetime | None
    problem: Reason | None = None  # STREAM_INCOMPLETE, RESPONSE_TOO_LARGE, MALFORMED_RESPONSE, ...
    sequence: int = 0  # attempt order across the recorder; the highest per tag is the last attempt
    #: response headers in :data:`CAPTURED_HEADERS`, names lower-cased (repeated ones joined ", ")
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


def kept_headers(headers: httpx.Headers) -> dict[str, str]:
    """The allow-listed response headers, names lower-cased, repeated values joined by ``", "``."""
    return {
        name: ", ".join(headers.get_list(name))
        for name in sorted(CAPTURED_HEADERS)
        if name in headers
    }


def _model_of(body: bytes) -> str | None:
    data = loads_or_none(body)
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def _json_id(body: bytes) -> str | None:
    data = loads_or_none(body)
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _sse_first_id(body: bytes) -> str | None:
    start = 0 if body.startswith(b"data:") else body.find(b"\ndata:") + 1
    if start == 0 and not body.startswith(b"data:"):
        return None
    end = body.find(b"\n", start)
    line = body[start : end if end >= 0 else len(body)]
    return _json_id(line[5:].strip())


class _Recording:
    """Sans-I/O recorder of one response: fed raw chunks, finalized exactly once."""

    __slots__ = (
        "_chunks",
        "_decoder",
        "_drained",
        "_finalized",
        "_recorder",
        "_size",
        "_tail",
        "done_seen",
        "eof",
        "limit",
        "malformed",
        "meta",
        "streamed",
        "too_large",
    )

    def __init__(
        self,
        *,
        recorder: ExchangeRecorder,
        meta: dict[str, object],
        headers: httpx.Headers,
        limit: int,
    ) -> None:
        self._recorder = recorder
        self.meta = meta
        self.limit = limit
        self.streamed = headers.get("content-type", "").startswith("text/event-stream")
        self._chunks: list[bytes] = []
        self._size = 0
        self._tail = b""
        self._finalized = False
        self._drained = 0
        self.done_seen = self.eof = self.too_large = self.malformed = False
        try:
            self._decoder = decoder_for(headers, limit, passthrough_unknown=True)
        except UnsupportedEncoding:  # br: cannot be decoded within the cap, so do not record
            self._decoder = None
            self.too_large = True

    def feed(self, raw: bytes) -> None:
        if self.too_large or self.malformed or not raw:
            return
        chunk = raw
        if self._decoder is not None:
            try:
                chunk = self._decoder.decode(raw)
            except DecodeOverflow:
                self.too_large = True
                self._chunks.clear()
                return
            except (httpx.DecodingError, zlib.error):
                self.malformed = True
                self._chunks.clear()
                return
        self._append(chunk)

    def _append(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._size += len(chunk)
        if self._size > self.limit:
            self.too_large = True
            self._chunks.clear()
            return
        self._chunks.append(chunk)
        if self.streamed and not self.done_seen:
            window = self._tail + chunk
            self.done_seen = any(window.startswith(d) or b"\n" + d in window for d in _DONES)
            self._tail = window[-(len(_DONE) + 1) :]

    def at_eof(self) -> None:
        if self._decoder is not None and not (self.too_large or self.malformed):
            try:
                self._append(self._decoder.flush())
            except DecodeOverflow:
                self.too_large = True
                self._chunks.clear()
            except (httpx.DecodingError, zlib.error):
                self.malformed = True
        self.eof = True

    def wants_drain(self) -> bool:
        return self.done_seen and not self.eof and not self._finalized

    def cut(self) -> None:
        """The server kept the stream open after ``[DONE]`` past ``_DRAIN_SECONDS``: what was
        received is the exchange."""
        self.at_eof()

    def drain(self, chunk: bytes) -> bool:
        """Record a chunk read after ``[DONE]``; False once more than ``_DRAIN_LIMIT`` follows."""
        self.feed(chunk)
        self._drained += len(chunk)
        if self._drained > _DRAIN_LIMIT:
            self.malformed = True
            return False
        return True

    def finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        body = b"".join(self._chunks)
        self._chunks = []
        complete = self.eof and (self.done_seen or not self.streamed)
        problem: Reason | None = None
        if self.too_large:
            problem = Reason.RESPONSE_TOO_LARGE
        elif self.malformed:
            problem = Reason.MALFORMED_RESPONSE
        elif not complete:
            problem = Reason.STREAM_INCOMPLETE
        chat_id = _sse_first_id(body) if self.streamed else _json_id(body)
        self._recorder.file(
            CapturedExchange(
                response_body=body,
                streamed=self.streamed,
                complete=complete and problem is None,
                chat_id=chat_id,
                finished_at=datetime.now(UTC),
                problem=problem,
                **self.meta,  # type: ignore[arg-type]
            )
        )


class _SyncStream(httpx.SyncByteStream):
    """Passes raw chunks through untouched, recording them on the way (``rec=None``: no record)."""

    def __init__(
        self,
        raw: Iterator[bytes],
        close: Callable[[], None],
        rec: _Recording | None,
        network_stream: Any = None,
    ) -> None:
        self._raw, self._close, self._rec = raw, close, rec
        self._network_stream = network_stream

    def __iter__(self) -> Iterator[bytes]:
        rec = self._rec
        for chunk in self._raw:
            if rec is not None:
                rec.feed(chunk)
            yield chunk
        if rec is not None:
            rec.at_eof()

    def close(self) -> None:
        rec = self._rec
        fired: Callable[[], bool] = bool
        try:
            if rec is not None and rec.wants_drain():
                # our default transports honour the deadline; any other httpcore connection is
                # shut down by the watchdog a little later
                with (
                    deadline_in(_DRAIN_SECONDS),
                    cut_off_after(2 * _DRAIN_SECONDS, self._network_stream) as fired,
                ):
                    for chunk in self._raw:
                        if not rec.drain(chunk):
                            break
                    else:
                        rec.at_eof()
        except _READ_FAILURES as exc:
            if rec is not None and (isinstance(exc, httpx.TimeoutException) or fired()):
                rec.cut()  # held open after [DONE]: the exchange is what was received
            # otherwise the remainder is gone: the exchange stays incomplete
        finally:
            if rec is not None:
                rec.finalize()
            self._close()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(
        self,
        raw: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
        rec: _Recording | None,
    ) -> None:
        self._raw, self._close, self._rec = raw, close, rec

    async def __aiter__(self) -> AsyncIterator[bytes]:
        rec = self._rec
        async for chunk in self._raw:
            if rec is not None:
                rec.feed(chunk)
            yield chunk
        if rec is not None:
            rec.at_eof()

    async def aclose(self) -> None:
        rec = self._rec
        try:
            if rec is not None and rec.wants_drain():
                async with asyncio.timeout(_DRAIN_SECONDS):
                    async for chunk in self._raw:
                        if not rec.drain(chunk):
                            break
                    else:
                        rec.at_eof()
        except (TimeoutError, httpx.TimeoutException):
            if rec is not None:
                rec.cut()
        except _READ_FAILURES:
            pass
        finally:
            if rec is not None:
                rec.finalize()
            await self._close()


class _Matcher:
    """Decides which requests are captured, and prepares them (pure)."""

    def __init__(self, *, base_url: str, recorder: ExchangeRecorder, max_bytes: int) -> None:
        base = httpx.URL(base_url.rstrip("/") + "/chat/completions")
        self.target = (base.scheme, base.host, base.port, base.path)
        self.recorder = recorder
        self.max_bytes = max_bytes

    def prepare(self, request: httpx.Request) -> dict[str, object] | None:
        """Meta of a request to record, or ``None`` (not a chat call, or no tag to file it by)."""
        tag = request.headers.pop(CAPTURE_HEADER, None) or self.recorder.bound_tag()
        url = request.url
        if request.method != "POST" or (url.scheme, url.host, url.port, url.path) != self.target:
            return None
        request.headers["Accept-Encoding"] = "identity"
        if tag is None:
            return None
        return {"tag": tag, "url": str(url), "started_at": datetime.now(UTC)}

    def recording(
        self, meta: dict[str, object], request: httpx.Request, response: httpx.Response
    ) -> _Recording:
        body = request.content
        meta = {
            **meta,
            "request_body": body,
            "model": _model_of(body),
            "status_code": response.status_code,
            "sequence": self.recorder.next_sequence(),
            "headers": kept_headers(response.headers),
        }
        return _Recording(
            recorder=self.recorder, meta=meta, headers=response.headers, limit=self.max_bytes
        )


def _rewrap(
    response: httpx.Response, stream: httpx.SyncByteStream | httpx.AsyncByteStream
) -> httpx.Response:
    return httpx.Response(
        status_code=response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=response.extensions,
    )


class CapturingTransport(httpx.BaseTransport):
    """Wraps an inner transport (or a whole user ``httpx.Client``) and records chat exchanges."""

    def __init__(
        self,
        inner: httpx.BaseTransport | httpx.Client,
        *,
        base_url: str,
        recorder: ExchangeRecorder,
        max_response_bytes: int,
    ) -> None:
        self._inner = inner
        self._match = _Matcher(base_url=base_url, recorder=recorder, max_bytes=max_response_bytes)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        meta = self._match.prepare(request)
        if meta is not None:
            request.read()
        inner = self._inner
        if isinstance(inner, httpx.Client):
            response = inner.send(request, stream=True, follow_redirects=False)
            close: Callable[[], None] = response.close
        else:
            response = inner.handle_request(request)
            if meta is None:
                return response
            close = cast(httpx.SyncByteStream, response.stream).close
        rec = None if meta is None else self._match.recording(meta, request, response)
        wrapped = _SyncStream(
            iter(cast(httpx.SyncByteStream, response.stream)),
            close,
            rec,
            response.extensions.get("network_stream"),
        )
        if isinstance(inner, httpx.Client) or response.is_stream_consumed:
            return _rewrap(response, wrapped)  # (in-memory responses were read when built)
        response.stream = wrapped  # our own transport's live response: wrap its stream in place
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncCapturingTransport(httpx.AsyncBaseTransport):
    """Async driver of the same capture logic (``_Matcher`` and ``_Recording`` are shared)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | httpx.AsyncClient,
        *,
        base_url: str,
        recorder: ExchangeRecorder,
        max_response_bytes: int,
    ) -> None:
        self._inner = inner
        self._match = _Matcher(base_url=base_url, recorder=recorder, max_bytes=max_response_bytes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        meta = self._match.prepare(request)
        if meta is not None:
            await request.aread()
        inner = self._inner
        if isinstance(inner, httpx.AsyncClient):
            response = await inner.send(request, stream=True, follow_redirects=False)
            close: Callable[[], Awaitable[None]] = response.aclose
        else:
            response = await inner.handle_async_request(request)
            if meta is None:
                return response
            close = cast(httpx.AsyncByteStream, response.stream).aclose
        rec = None if meta is None else self._match.recording(meta, request, response)
        wrapped = _AsyncStream(aiter(cast(httpx.AsyncByteStream, response.stream)), close, rec)
        if isinstance(inner, httpx.AsyncClient) or response.is_stream_consumed:
            return _rewrap(response, wrapped)
        response.stream = wrapped
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
