"""Shared machinery of the reliability suite (see README.md for the table of cases).

* :class:`FakeTime`: retries and ``Retry-After`` waits advance a fake clock instead of waiting.
* :class:`Tee` / :class:`ATee`: recording transports under the clients, so that every request
  leaving the process (chat calls *and* the verifier's own fetches) and every byte the server sent
  back are known independently of the code under test.
* :func:`build`: a ``ChatRedpill`` ("lc") or ``Redpill`` ("li") over a fresh verifier and a fresh
  ``ReceiptStore``; :func:`call` / :func:`acall` run one chat (plain or streamed, strict or
  annotate) and return an :class:`Outcome`: the content delivered (returned, or carried by
  ``VerificationFailed``) and the verdict; only documented exceptions are let through.
* :func:`assert_exchange`: the verdict is exactly as expected, and nothing is lost: the content
  equals the server's bytes parsed, the receipt holds those bytes exactly, one receipt per exchange.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr

from redpill_integrations import ReceiptStore, RedpillVerifier, VerificationFailed
from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from tests.support import FakeTime

MODEL = "phala/gpt-oss-120b"
KEY = "redpill_verification"
_TLS = httpx.create_ssl_context()  # loading the CA bundle is slow: one context for every rig


@dataclasses.dataclass
class Wire:
    """One request as it left the process, and the raw bytes that came back."""

    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: bytes
    status: int = 0
    received: bytearray = dataclasses.field(default_factory=bytearray)


class _TeeStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, inner: Any, wire: Wire) -> None:
        self._inner, self._wire = inner, wire

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._wire.received += chunk
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._wire.received += chunk
            yield chunk

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


class Tee(httpx.BaseTransport):
    def __init__(self, log: list[Wire]) -> None:
        self.log, self._inner = log, httpx.HTTPTransport(verify=_TLS)

    def _wire(self, request: httpx.Request) -> Wire:
        wire = Wire(request.method, request.url, request.headers.copy(), request.content)
        self.log.append(wire)
        return wire

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        wire = self._wire(request)
        response = self._inner.handle_request(request)
        wire.status = response.status_code
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_TeeStream(response.stream, wire),
            extensions=response.extensions,
        )


class ATee(httpx.AsyncBaseTransport):
    def __init__(self, log: list[Wire]) -> None:
        self.log, self._inner = log, httpx.AsyncHTTPTransport(verify=_TLS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        wire = Wire(request.method, request.url, request.headers.copy(), request.content)
        self.log.append(wire)
        response = await self._inner.handle_async_request(request)
        wire.status = response.status_code
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_TeeStream(response.stream, wire),
            extensions=response.extensions,
        )


@dataclasses.dataclass
class Rig:
    """One adapter instance with its verifier, store, fake clock and wire logs."""

    kind: str  # "lc" (ChatRedpill) or "li" (Redpill)
    llm: Any
    verifier: RedpillVerifier
    store: ReceiptStore
    time: FakeTime
    chat_wire: list[Wire]  # what the chat client sent and received
    fetch_wire: list[Wire]  # what the verifier's own fetchers sent and received

    def chats(self) -> list[Wire]:
        return [w for w in self.chat_wire if w.url.path.endswith("/chat/completions")]


def build(
    kind: str,
    *,
    base_url: str,
    trust: TrustAnchors,
    store_path: Path,
    api_key: str = "sk-redpill-emulator",
    mode: str = "strict",
    model: str = MODEL,
    policy: VerificationPolicy | None = None,
    real_time: bool = False,
    clock_skew: float = 0.0,
    fake: Any = None,
    backoff: Any = None,
    **llm_kwargs: Any,
) -> Rig:
    """``fake``: the clock object (``FakeTime()`` by default; anything with its methods);
    ``backoff``: the verifier's tenacity wait between signature attempts."""
    fake = fake or FakeTime()
    chat_wire: list[Wire] = []
    fetch_wire: list[Wire] = []
    timing: dict[str, Any] = (
        {}
        if real_time
        else {"sleep": fake.sleep, "asleep": fake.asleep, "monotonic": fake.monotonic}
    )
    if clock_skew:
        timing["clock"] = lambda: datetime.now(UTC) + timedelta(seconds=clock_skew)
    elif hasattr(fake, "clock"):
        timing["clock"] = fake.clock
    store = ReceiptStore(store_path)
    verifier = RedpillVerifier(
        base_url=base_url,
        api_key=api_key,
        trust=trust,
        receipt_store=store,
        policy=policy or VerificationPolicy(signature_deadline=30.0),
        transport=Tee(fetch_wire),
        async_transport=ATee(fetch_wire),
        backoff=backoff,
        **timing,
    )
    sync_http = httpx.Client(transport=Tee(chat_wire))
    async_http = httpx.AsyncClient(transport=ATee(chat_wire))
    if kind == "lc":  # adapters imported lazily: child processes load only the one they use
        from redpill_integrations.langchain import ChatRedpill

        llm: Any = ChatRedpill(
            model=model,
            api_key=SecretStr(api_key),
            base_url=base_url,
            verification=cast(Any, mode),
            verifier=verifier,
            max_retries=0,
            http_client=sync_http,
            http_async_client=async_http,
            **llm_kwargs,
        )
    else:
        from redpill_integrations.llama_index import Redpill

        llm = Redpill(
            model=model,
            api_key=api_key,
            api_base=base_url,
            verification=mode,
            verifier=verifier,
            max_retries=0,
            http_client=sync_http,
            async_http_client=async_http,
            **llm_kwargs,
        )
    return Rig(kind, llm, verifier, store, fake, chat_wire, fetch_wire)


@dataclasses.dataclass
class Outcome:
    content: str  # what the caller holds: returned, or carried by VerificationFailed
    verdict: dict[str, Any]
    raised: VerificationFailed | None
    streamed: str | None = None  # for streams: the content of the chunks delivered


def _lc_text(message: Any) -> str:
    assert isinstance(message.content, str)
    return message.content


def _settle(
    rig: Rig, got: Any, chunks: list[Any] | None, failed: VerificationFailed | None
) -> Outcome:
    if rig.kind == "lc":
        streamed = "".join(str(c.content) for c in chunks) if chunks is not None else None
        if failed is not None:
            return Outcome(_lc_text(failed.response), failed.result.to_dict(), failed, streamed)
        if chunks is not None:
            (last,) = [c for c in chunks if KEY in c.response_metadata]
            assert last is chunks[-1]
            return Outcome(streamed or "", last.response_metadata[KEY], None, streamed)
        return Outcome(_lc_text(got), got.response_metadata[KEY], None)
    streamed = "".join(c.delta or "" for c in chunks) if chunks is not None else None
    if failed is not None:
        return Outcome(
            failed.response.message.content or "", failed.result.to_dict(), failed, streamed
        )
    response = chunks[-1] if chunks is not None else got
    if chunks is not None:
        assert [c for c in chunks if KEY in c.additional_kwargs] == [response]
    return Outcome(response.message.content or "", response.additional_kwargs[KEY], None, streamed)


def call(rig: Rig, prompt: str, *, stream: bool = False, **kw: Any) -> Outcome:
    """One sync chat; only VerificationFailed is caught (anything else propagates)."""
    chunks: list[Any] | None = [] if stream else None
    got: Any = None
    try:
        if rig.kind == "lc":
            if chunks is not None:
                for c in rig.llm.stream(prompt, **kw):
                    chunks.append(c)
            else:
                got = rig.llm.invoke(prompt, **kw)
        else:
            from llama_index.core.base.llms.types import ChatMessage

            msgs = [ChatMessage(role="user", content=prompt)]
            if chunks is not None:
                for c in rig.llm.stream_chat(msgs, **kw):
                    chunks.append(c)
            else:
                got = rig.llm.chat(msgs, **kw)
    except VerificationFailed as exc:
        return _settle(rig, got, chunks, exc)
    return _settle(rig, got, chunks, None)


async def acall(rig: Rig, prompt: str, *, stream: bool = False, **kw: Any) -> Outcome:
    chunks: list[Any] | None = [] if stream else None
    got: Any = None
    try:
        if rig.kind == "lc":
            if chunks is not None:
                async for c in rig.llm.astream(prompt, **kw):
                    chunks.append(c)
            else:
                got = await rig.llm.ainvoke(prompt, **kw)
        else:
            from llama_index.core.base.llms.types import ChatMessage

            msgs = [ChatMessage(role="user", content=prompt)]
            if chunks is not None:
                async for c in await rig.llm.astream_chat(msgs, **kw):
                    chunks.append(c)
            else:
                got = await rig.llm.achat(msgs, **kw)
    except VerificationFailed as exc:
        return _settle(rig, got, chunks, exc)
    return _settle(rig, got, chunks, None)


def server_content(body: bytes) -> str:
    """The assistant text in a chat body as the server sent it (JSON, or SSE deltas joined)."""
    if body.lstrip().startswith(b"data:"):
        out = []
        for line in body.split(b"\n"):
            if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
                for choice in json.loads(line[6:]).get("choices") or []:
                    out.append((choice.get("delta") or {}).get("content") or "")
        return "".join(out)
    return str(json.loads(body)["choices"][0]["message"].get("content") or "")


def assert_exchange(
    rig: Rig,
    out: Outcome,
    status: str,
    reasons: tuple[str, ...],
    *,
    mode: str = "strict",
    wire: Wire | None = None,
) -> Any:
    """Exact verdict, nothing lost, exactly one receipt; returns the receipt."""
    assert (out.verdict["status"], tuple(out.verdict["reasons"])) == (status, reasons), (
        out.verdict.get("detail")
    )
    assert (out.raised is not None) == (mode == "strict" and status != "verified")
    if out.raised is not None:
        assert out.raised.result.to_dict() == out.verdict
        assert out.raised.reason is not None and out.raised.reason.value == reasons[0]
    (sent,) = [wire] if wire is not None else rig.chats()
    assert sent.status == 200
    assert out.content == server_content(bytes(sent.received))
    if out.streamed is not None:
        assert out.streamed == out.content
    (receipt,) = rig.store.list(limit=10)
    assert receipt.receipt_id == out.verdict["receipt_id"]
    assert receipt.result.to_dict() == out.verdict
    assert receipt.response_body == bytes(sent.received)
    assert receipt.request_body == sent.body
    assert out.verdict["chat_id"] == receipt.chat_id
    return receipt


@pytest.fixture
def rig(emu: Emulator, tmp_path: Path) -> Any:
    """``rig(kind, mode=..., **build_kwargs)`` against the (reset) session emulator."""
    made: list[Rig] = []

    def make(kind: str, **kwargs: Any) -> Rig:
        kwargs.setdefault("base_url", emu.base_url)
        kwargs.setdefault("trust", emu.trust)
        made.append(build(kind, store_path=tmp_path / f"r{len(made)}.sqlite3", **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.verifier.close()
        r.store.close()
