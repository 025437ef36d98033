"""A stand-in verifier for fast unit tests of the LLM's seams (no sockets, no emulator process).

``FakeVerifier`` speaks the wire contract (``recorder.new_tag/take``, ``http_client``,
``async_http_client``, ``verify``, ``averify``) over ``httpx.MockTransport``; the bodies it serves
are rendered by the emulator's own renderers, and its verdict is whatever the test scripts.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from llama_index.core.instrumentation import get_dispatcher

from redpill_integrations.emulator import Reply
from redpill_integrations.emulator.model import render_json, render_sse_events
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Check, Reason, VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER
from tests.support_llama_index import Collector

MODEL = "phala/deepseek-chat-v3-0324"
KEY = "sk-unit-test-key-0123456789"
BASE = "https://redpill.test/v1"


@dataclasses.dataclass
class FakeExchange:
    tag: str | None
    chat_id: str
    request: httpx.Request


class FakeRecorder:
    def __init__(self) -> None:
        self.filed: dict[str, FakeExchange] = {}
        self._n = itertools.count(1)

    def new_tag(self) -> str:
        return f"tag-{next(self._n)}"

    def take(self, tag: str) -> FakeExchange | None:
        return self.filed.pop(tag, None)


class FakeVerifier:
    base_url = BASE
    tee_model_prefixes = ("phala/",)

    def __init__(self) -> None:
        self.policy = VerificationPolicy()
        self.recorder = FakeRecorder()
        self.replies: list[Reply] = []
        self.reasons: list[Reason] = []  # empty: verified
        self.verified: list[FakeExchange | None] = []
        self.requests: list[httpx.Request] = []
        self._ids = itertools.count(1)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        chat_id = f"chatcmpl-unit{next(self._ids)}"
        reply = self.replies.pop(0) if self.replies else Reply.text("hello from the fake")
        tag = request.headers.get(CAPTURE_HEADER)
        if tag is not None:
            self.recorder.filed[tag] = FakeExchange(tag, chat_id, request)
        if body.get("stream"):
            events = render_sse_events(
                chat_id, body["model"], reply, body["messages"], include_usage=False
            )
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=b"".join(events)
            )
        return httpx.Response(
            200,
            headers={"content-type": "application/json"},
            content=render_json(chat_id, body["model"], reply, body["messages"]),
        )

    def is_tee_model(self, model: str | None) -> bool:
        return bool(model) and str(model).startswith(self.tee_model_prefixes)

    # a legacy gateway: the pre-check is the prefix rule, no request fields
    def precheck(self, model: str | None) -> Reason | None:
        return None if self.is_tee_model(model) else Reason.MODEL_NOT_TEE

    async def aprecheck(self, model: str | None) -> Reason | None:
        return self.precheck(model)

    def gateway(self) -> SimpleNamespace:
        return SimpleNamespace(protocol="legacy")

    async def agateway(self) -> SimpleNamespace:
        return self.gateway()

    def request_extras(self, mode: str) -> dict[str, object]:
        return {}

    async def arequest_extras(self, mode: str) -> dict[str, object]:
        return {}

    def http_client(self, inner: httpx.Client | None = None) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self._handle))

    def async_http_client(self, inner: httpx.AsyncClient | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def verify(self, exchange: FakeExchange | None) -> VerificationResult:
        self.verified.append(exchange)
        chat_id = exchange.chat_id if exchange else None
        if exchange is None:
            return VerificationResult.unverifiable(Reason.MALFORMED_RESPONSE)
        checks = {c.value: "pass" for c in Check}
        return VerificationResult.build(
            checks=checks, reasons=self.reasons, chat_id=chat_id, model=MODEL
        )

    async def averify(self, exchange: FakeExchange | None) -> VerificationResult:
        return self.verify(exchange)


@pytest.fixture
def fake() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def collector() -> Iterator[Collector]:
    handler = Collector(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)
