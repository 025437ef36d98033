"""``ResponseUnreadable.reason_for``: which failures after an answer are ours to raise, and why.

Both adapters ask it when the OpenAI SDK call (or its stream) raises; ``None`` keeps today's way
out (HTTP errors stay ``openai.APIError``, cancellations and our own errors pass untouched).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime

import httpx
import openai
import pytest

from redpill_integrations import ResponseUnreadable
from redpill_integrations.errors import ConfigurationError, TransportError
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire.capture import CapturedExchange

URL = "https://redpill.test/v1/chat/completions"
BODY = b'{"id": "chatcmpl-1", "x": ' + b"[" * 200 + b"]" * 200 + b"}"
JSON = CapturedExchange(
    tag="t",
    url=URL,
    request_body=b"{}",
    response_body=BODY,
    status_code=200,
    streamed=False,
    complete=True,
    chat_id="chatcmpl-1",
    model="phala/m",
    started_at=datetime.now(UTC),
    finished_at=datetime.now(UTC),
)
SSE = dataclasses.replace(JSON, streamed=True, complete=False, problem=Reason.STREAM_INCOMPLETE)
SDK_ERROR = openai.APIConnectionError(request=httpx.Request("POST", URL))


@pytest.mark.parametrize(
    ("exchange", "cause", "reason"),
    [
        (JSON, RecursionError("maximum recursion depth exceeded"), Reason.MALFORMED_RESPONSE),
        (JSON, json.JSONDecodeError("bad", "{", 0), Reason.MALFORMED_RESPONSE),
        (JSON, KeyError("choices"), Reason.MALFORMED_RESPONSE),  # any reader failure after a 2xx
        (JSON, SDK_ERROR, None),  # the SDK's own errors keep their way out
        (JSON, ConfigurationError("ours"), None),
        (JSON, asyncio.CancelledError(), None),  # not an Exception: never swallowed
        (JSON, KeyboardInterrupt(), None),
        (dataclasses.replace(JSON, status_code=500), RecursionError(), None),
        (dataclasses.replace(JSON, complete=False), RecursionError(), None),  # the body never ended
        (None, RecursionError(), None),
        (SSE, httpx.RemoteProtocolError("peer closed"), Reason.STREAM_INCOMPLETE),
        (SSE, httpx.ReadTimeout("slow"), Reason.STREAM_INCOMPLETE),
        (SSE, json.JSONDecodeError("bad event", "{", 0), Reason.MALFORMED_RESPONSE),
        (SSE, GeneratorExit(), None),  # the consumer stopped: not an error
        (SSE, RuntimeError("a callback's own error"), None),
    ],
)
def test_reason_for(
    exchange: CapturedExchange | None, cause: BaseException, reason: Reason | None
) -> None:
    assert ResponseUnreadable.reason_for(exchange, cause) is reason


def test_error_carries_verdict_bytes_and_no_secret() -> None:
    verdict = VerificationResult.unverifiable(
        Reason.MALFORMED_RESPONSE, chat_id=None, model="phala/m", verified_at=datetime.now(UTC)
    )
    error = ResponseUnreadable.of(JSON, verdict, RecursionError(), reason=Reason.MALFORMED_RESPONSE)
    assert isinstance(error, openai.APIError) and isinstance(error, TransportError)
    assert error.reason is Reason.MALFORMED_RESPONSE and error.result is verdict
    assert error.body == BODY and error.response is None
    assert error.request.url == httpx.URL(URL) and "authorization" not in error.request.headers
    assert "chatcmpl-1" in str(error) and "could not be parsed" in str(error)
    assert "RecursionError" in str(error) and "unverifiable" in str(error)
