"""The adapter core on its own: the tag taken once, the dressed request, and every way a
stream ends (against a stub verifier; both adapters' suites run the same core for real)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from redpill_integrations import ResponseUnreadable
from redpill_integrations._adapter import VerifiedCalls
from redpill_integrations.errors import ConfigurationError, VerificationFailed
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER, CapturedExchange

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SSE = CapturedExchange(
    tag="tag-1",
    url="https://redpill.test/v1/chat/completions",
    request_body=b"{}",
    response_body=b"data: {}\n\n",
    status_code=200,
    streamed=True,
    complete=False,
    chat_id="chatcmpl-1",
    model="acme/m",
    started_at=NOW,
    finished_at=NOW,
    problem=Reason.STREAM_INCOMPLETE,
)
INCOMPLETE = VerificationResult.unverifiable(Reason.STREAM_INCOMPLETE, chat_id="chatcmpl-1")


class StubRecorder:
    def __init__(self, exchange: CapturedExchange | None) -> None:
        self.exchange = exchange
        self.takes: list[str] = []

    def new_tag(self) -> str:
        return "tag-1"

    def take(self, tag: str) -> CapturedExchange | None:
        self.takes.append(tag)
        exchange, self.exchange = self.exchange, None
        return exchange


class StubVerifier:
    tee_model_prefixes = ("acme/",)

    def __init__(
        self, exchange: CapturedExchange | None = SSE, policy: VerificationPolicy | None = None
    ) -> None:
        self.policy = policy or VerificationPolicy()
        self.recorder = StubRecorder(exchange)
        self.verified: list[CapturedExchange | None] = []

    def is_tee_model(self, model: str | None) -> bool:
        return bool(model) and str(model).startswith(self.tee_model_prefixes)

    def precheck(self, model: str | None) -> Reason | None:
        return None if self.is_tee_model(model) else Reason.MODEL_NOT_TEE

    def gateway(self) -> SimpleNamespace:
        return SimpleNamespace(protocol="legacy")

    def request_extras(self, mode: str) -> dict[str, Any]:
        return {"provider": {"aci_verified": True}} if mode == "strict" else {}

    def verify(self, exchange: CapturedExchange | None) -> VerificationResult:
        self.verified.append(exchange)
        return INCOMPLETE


@dataclasses.dataclass
class Host:
    events: list[tuple[VerificationResult, bool]] = dataclasses.field(default_factory=list)
    chunks: list[str] = dataclasses.field(default_factory=list)

    def seen(self, chunk: str) -> None:
        self.chunks.append(chunk)

    def final(self, result: VerificationResult) -> str:
        return "final"

    def emit(self, result: VerificationResult, *, delivered: bool) -> None:
        self.events.append((result, delivered))

    def carried(self, final: str) -> Any:
        return "".join([*self.chunks, final])

    def delivered(self) -> Any:
        return "".join(self.chunks)

    def yielding(self, final: str) -> None:
        return None


def calls(verifier: StubVerifier, mode: str = "annotate", **kw: Any) -> VerifiedCalls:
    return VerifiedCalls(verifier=verifier, mode=mode, **kw)  # type: ignore[arg-type]


def test_the_exchange_is_taken_once() -> None:
    verifier = StubVerifier()
    call = calls(verifier).start("acme/m", {})
    assert call.take() is SSE
    assert call.take() is None and verifier.recorder.takes == ["tag-1"]


def test_strict_refuses_what_the_verifier_cannot_verify_before_tagging() -> None:
    verifier = StubVerifier()
    with pytest.raises(ConfigurationError) as err:
        calls(verifier, "strict").start("phala/m", {})
    assert err.value.reason is Reason.MODEL_NOT_TEE and "acme/…" in str(err.value)
    calls(verifier, "annotate").start("phala/m", {})  # annotate lets the verdict say it


def test_the_request_is_dressed_with_the_tag_and_the_request_fields() -> None:
    verifier = StubVerifier()
    plain = calls(verifier).start("acme/m", {"x": 1}, extra_headers={"A": "1"}, extra_body={"u": 1})
    assert plain.kwargs == {"x": 1, "extra_headers": {"A": "1", CAPTURE_HEADER: "tag-1"}}
    fields = calls(verifier, fields=lambda v, mode: {"nonce": mode})
    dressed = fields.start("acme/m", {"extra_body": {"mine": 2}}, extra_body={"u": 1})
    assert dressed.kwargs["extra_body"] == {"mine": 2, "nonce": "annotate"}  # per call wins
    assert fields.start("acme/m", {}, extra_body={"u": 1}).kwargs["extra_body"] == {
        "u": 1,
        "nonce": "annotate",
    }


def test_the_request_nonce_is_a_fresh_random_user_per_call() -> None:
    verifier = StubVerifier(policy=VerificationPolicy(request_nonce=True))
    core = calls(verifier)
    users = [core.start("acme/m", {}).kwargs["extra_body"]["user"] for _ in range(3)]
    assert len(set(users)) == 3
    assert all(u.startswith("rp-") and len(bytes.fromhex(u[3:])) == 16 for u in users)
    mine = core.start("acme/m", {"extra_body": {"user": "alice"}}).kwargs["extra_body"]["user"]
    assert mine.startswith("alice:rp-")  # the caller's user is kept in front
    top = core.start("acme/m", {"user": "bob"}).kwargs["extra_body"]["user"]
    assert top.startswith("bob:rp-")
    assert "extra_body" not in calls(StubVerifier()).start("acme/m", {}).kwargs  # off by default


def test_the_default_request_fields_are_the_verifiers_request_extras() -> None:
    verifier = StubVerifier()
    strict = calls(verifier, "strict").start("acme/m", {}, extra_body={"u": 1})
    assert strict.kwargs["extra_body"] == {"u": 1, "provider": {"aci_verified": True}}
    assert "extra_body" not in calls(verifier, "annotate").start("acme/m", {}).kwargs


def test_an_abandoned_stream_is_verified_emitted_and_logged_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier, host = StubVerifier(), Host()
    core = calls(verifier, "strict")
    stream = core.stream(core.start("acme/m", {}), iter(["a", "b", "c"]), host)
    assert next(stream) == "a"
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        stream.close()  # GeneratorExit: the consumer stopped; strict does not raise here
    assert verifier.verified == [SSE] and host.events == [(INCOMPLETE, False)]
    assert "ended early" in caplog.text


def test_a_stream_that_broke_off_raises_response_unreadable_with_what_was_delivered() -> None:
    def broken() -> Any:
        yield "a"
        raise httpx.RemoteProtocolError("peer closed")

    verifier, host = StubVerifier(), Host()
    core = calls(verifier)
    stream = core.stream(core.start("acme/m", {}), broken(), host)
    with pytest.raises(ResponseUnreadable) as err:
        list(stream)
    assert (err.value.reason, err.value.result, err.value.response) == (
        Reason.STREAM_INCOMPLETE,
        INCOMPLETE,
        "a",
    )
    assert isinstance(err.value.__cause__, httpx.RemoteProtocolError)
    assert host.events == [(INCOMPLETE, False)] and verifier.verified == [SSE]


def test_a_stream_that_failed_before_delivering_keeps_its_own_error() -> None:
    def failing() -> Any:
        raise RuntimeError("the SDK's own error")
        yield

    verifier, host = StubVerifier(), Host()
    core = calls(verifier)
    with pytest.raises(RuntimeError, match="SDK's own"):
        list(core.stream(core.start("acme/m", {}), failing(), host))
    assert verifier.verified == [] and host.events == [] and verifier.recorder.takes == ["tag-1"]


def test_a_finished_stream_attaches_emits_then_enforces() -> None:
    verifier, host = StubVerifier(), Host()
    core = calls(verifier, "strict")
    stream = core.stream(core.start("acme/m", {}), iter(["a", "b"]), host)
    with pytest.raises(VerificationFailed) as err:
        list(stream)
    assert err.value.response == "abfinal"  # nothing is lost
    assert host.events == [(INCOMPLETE, True)]  # emitted before strict raised


# -- an HTTP error answer the gateway signed a receipt for (an ACI refusal) ------------------------

REFUSAL = CapturedExchange(
    tag="tag-1",
    url="https://redpill.test/v1/chat/completions",
    request_body=b'{"provider":{"aci_verified":true}}',
    response_body=b'{"error":{"code":"upstream_verification_failed"}}',
    status_code=503,
    streamed=False,
    complete=True,
    chat_id=None,
    model="acme/m",
    started_at=NOW,
    finished_at=NOW,
    headers={"x-aci-version": "aci/1", "x-receipt-id": "rcpt-" + "0" * 24},
)
REFUSED = VerificationResult.unverifiable(Reason.UPSTREAM_REFUSED, protocol="aci")


class RefusingVerifier(StubVerifier):
    def verify(self, exchange: CapturedExchange | None) -> VerificationResult:
        self.verified.append(exchange)
        return REFUSED


def _sdk_error(status: int = 503) -> openai.APIStatusError:
    request = httpx.Request("POST", "https://redpill.test/v1/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": "refused"}})
    return openai.InternalServerError("refused", response=response, body=None)


def _refuse(_kwargs: dict[str, Any]) -> Any:
    raise _sdk_error()


def _answer_host() -> tuple[Any, list[tuple[VerificationResult, bool]]]:
    events: list[tuple[VerificationResult, bool]] = []

    class Answers:
        def attach(self, response: Any, result: VerificationResult) -> Any:
            return response

        def emit(self, result: VerificationResult, *, delivered: bool) -> None:
            events.append((result, delivered))

        def carried(self, response: Any) -> Any:
            return response

    return Answers(), events


def test_a_receipted_refusal_is_verified_then_strict_raises_verification_failed() -> None:
    verifier = RefusingVerifier(REFUSAL)
    core = calls(verifier, "strict")
    host, events = _answer_host()
    with pytest.raises(VerificationFailed) as err:
        core.call(core.start("acme/m", {}), _refuse, host)
    assert err.value.result is REFUSED and verifier.verified == [REFUSAL]
    assert isinstance(err.value.response, openai.InternalServerError)
    assert err.value.__cause__ is err.value.response
    assert events == [(REFUSED, False)]


def test_a_receipted_refusal_in_annotate_mode_reraises_the_sdk_error_after_its_receipt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = RefusingVerifier(REFUSAL)
    core = calls(verifier, "annotate")
    host, events = _answer_host()
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        with pytest.raises(openai.InternalServerError):
            core.call(core.start("acme/m", {}), _refuse, host)
    assert verifier.verified == [REFUSAL] and events == [(REFUSED, False)]
    assert any("UPSTREAM_REFUSED" in r.getMessage() for r in caplog.records)


def test_a_refused_stream_before_any_chunk_is_verified_and_strict_raises() -> None:
    verifier = RefusingVerifier(REFUSAL)
    core = calls(verifier, "strict")

    def inner() -> Iterator[str]:
        raise _sdk_error()
        yield "never"  # pragma: no cover

    host = Host()
    with pytest.raises(VerificationFailed) as err:
        list(core.stream(core.start("acme/m", {}), inner(), host))
    assert err.value.result is REFUSED and host.events == [(REFUSED, False)]


def test_an_http_error_without_a_receipt_keeps_its_own_way_out() -> None:
    plain = dataclasses.replace(REFUSAL, headers={})
    verifier = RefusingVerifier(plain)
    core = calls(verifier, "strict")
    host, events = _answer_host()
    with pytest.raises(openai.InternalServerError):
        core.call(core.start("acme/m", {}), _refuse, host)
    assert verifier.verified == [] and events == []  # no verdict: the SDK error is the answer
