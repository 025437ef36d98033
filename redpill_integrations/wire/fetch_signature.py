"""Fetching a response's signature, with retries composed from tenacity's parts (SPEC §2.2).

``GET {base}/signature/{quote(chat_id, safe='')}?model=…&signing_algo=…`` with the API key. The
signature appears only after the response ends and lives in one node's memory, so "not found" is
usually "not yet" or "another node": the flow retries

* 404, and a 200 without ``text`` (the ``{"error_code": …}`` envelope some gateways send),
* 429, waiting at least ``Retry-After`` (capped at ``retry_after_cap``),
* 5xx, timeouts, connection errors and resets,

with jittered exponential backoff (``wait_random_exponential``) until the next wait would leave
the next attempt less than ``MIN_ATTEMPT_SECONDS`` (at most a quarter of the deadline) before
``policy.signature_deadline``. Other 4xx answers are final at once. tenacity's ``BaseRetrying.iter``
decides (``retry_if_result`` + a deadline stop + the wait); this module only turns its decisions
into effects, so sync and async share it and tests inject the sleep and the clock. Users never see
``tenacity.RetryError``: the last outcome becomes the reason.

Final reasons: ``SIGNATURE_UNAVAILABLE`` (404s / envelope), or ``SIGNATURE_EXPIRED`` when the
404s came for an exchange that finished longer ago than ``signature_ttl`` (the server's default
retention is 1200 s, so "not found" then means "forgotten", not "not yet"); ``RATE_LIMITED``;
``UPSTREAM_HTTP_ERROR`` (5xx, other 4xx, connection errors); ``TIMEOUT``; ``MALFORMED_RESPONSE``
(a 200 that is neither a signature nor an error envelope, after retries); ``DUPLICATE_JSON_KEY``
at once, without retrying (a 200 whose JSON repeats a key: parsers disagree on which value counts,
so the answer is refused as evidence, a ``failed`` verdict).
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import time
from collections.abc import Callable
from datetime import UTC
from typing import Protocol, TypeVar
from urllib.parse import quote

import httpx
import tenacity
from tenacity import RetryCallState

from redpill_integrations.errors import DuplicateJSONKey, EvidenceError, MalformedEvidence
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason
from redpill_integrations.verify.encoding import loads_strict
from redpill_integrations.verify.models import SignatureRecord
from redpill_integrations.wire.flow import Fetch, Fetched, FetchFailed, Flow, Sleep
from redpill_integrations.wire.http import Endpoints

__all__ = ["Retryable", "SignatureFetch", "retried_fetch", "signature_flow"]

logger = logging.getLogger("redpill_integrations.wire")

MAX_SIGNATURE_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureFetch:
    """Outcome of the whole retried fetch: a record, or the reason there is none."""

    record: SignatureRecord | None
    reason: Reason | None
    attempts: int
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Attempt:
    record: SignatureRecord | None = None
    reason: Reason | None = None
    retryable: bool = False
    retry_after: float | None = None
    detail: str = ""


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify(answer: Fetched | FetchFailed) -> _Attempt:
    """What one answer means (pure; exposed for tests)."""
    if isinstance(answer, FetchFailed):
        retry = answer.reason is not Reason.RESPONSE_TOO_LARGE
        return _Attempt(reason=answer.reason, retryable=retry, detail=answer.detail)
    status = answer.status_code
    if status == 200:
        try:
            return _Attempt(record=SignatureRecord.from_json(answer.body))
        except MalformedEvidence:
            pass
        try:
            envelope = loads_strict(answer.body, what="signature answer")
        except DuplicateJSONKey:  # final: retrying a parser-differential trap proves nothing
            return _Attempt(reason=Reason.DUPLICATE_JSON_KEY, detail="200 with a duplicate key")
        except EvidenceError:  # not JSON, too deep: not an envelope either
            envelope = None
        if isinstance(envelope, dict) and ("error_code" in envelope or "error" in envelope):
            return _Attempt(
                reason=Reason.SIGNATURE_UNAVAILABLE, retryable=True, detail="200 error envelope"
            )
        return _Attempt(
            reason=Reason.MALFORMED_RESPONSE, retryable=True, detail="200 not a signature"
        )
    if status == 404:
        return _Attempt(reason=Reason.SIGNATURE_UNAVAILABLE, retryable=True, detail="404")
    if status == 429:
        after = _retry_after(answer.headers.get("retry-after"), time.time())
        return _Attempt(reason=Reason.RATE_LIMITED, retryable=True, retry_after=after, detail="429")
    if status >= 500:
        return _Attempt(reason=Reason.UPSTREAM_HTTP_ERROR, retryable=True, detail=f"HTTP {status}")
    return _Attempt(reason=Reason.UPSTREAM_HTTP_ERROR, detail=f"HTTP {status}")


#: the least time a retry is started with (at most a quarter of the deadline): each attempt's
#: fetch is bounded by what is left of the deadline, and a retry started with a sliver of it ended
#: ``TIMEOUT`` instead of the reason every earlier answer gave (measured: 13 % of never-ready
#: lookups with the default 30 s deadline and a 0.3 s round trip), which also hid
#: ``SIGNATURE_EXPIRED``
MIN_ATTEMPT_SECONDS = 1.0


class _DeadlineStop(tenacity.stop.stop_base):
    """Stop when the coming wait would leave the next attempt less than its minimum time
    before the deadline (measured on an injectable clock)."""

    def __init__(self, deadline: float, monotonic: Callable[[], float]) -> None:
        self._deadline = deadline
        self._reserve = min(MIN_ATTEMPT_SECONDS, deadline / 4)
        self._monotonic = monotonic
        self._start = monotonic()

    def remaining(self) -> float:
        return self._deadline - (self._monotonic() - self._start)

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.upcoming_sleep + self._reserve >= self.remaining()


class _HonourRetryAfter(tenacity.wait.wait_base):
    def __init__(self, backoff: tenacity.wait.wait_base, cap: float) -> None:
        self._backoff = backoff
        self._cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self._backoff(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            after = outcome.result().retry_after
            if after is not None:
                wait = max(wait, min(after, self._cap))
        return wait


class Retryable(Protocol):
    """What a classified answer tells the retry loop."""

    @property
    def retryable(self) -> bool: ...

    @property
    def retry_after(self) -> float | None: ...


A = TypeVar("A", bound=Retryable)


def retried_fetch(
    request: Callable[[float], httpx.Request],
    classify: Callable[[Fetched | FetchFailed], A],
    *,
    max_bytes: int,
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
    retry_after_cap: float = 10.0,
    backoff: tenacity.wait.wait_base | None = None,
) -> Flow[tuple[A, int]]:
    """Fetch ``request(seconds_left)`` until ``classify`` says the answer is final or the next
    wait would leave the next attempt less than ``MIN_ATTEMPT_SECONDS`` (at most a quarter of
    ``deadline``) before ``deadline`` seconds (jittered exponential backoff, ``Retry-After``
    honoured up to ``retry_after_cap``). The last classified answer and the number of attempts."""
    stop = _DeadlineStop(deadline, monotonic)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda attempt: attempt.retryable),
        stop=stop,
        wait=_HonourRetryAfter(
            backoff or tenacity.wait_random_exponential(multiplier=0.25, max=4.0), retry_after_cap
        ),
        retry_error_callback=lambda rs: rs.outcome.result() if rs.outcome else None,
    )
    retrying.begin()  # tenacity's per-run statistics (thread-local; a flow runs on one thread)
    state = RetryCallState(retrying, fn=None, args=(), kwargs={})
    attempts = 0
    while True:
        action = retrying.iter(state)
        if isinstance(action, tenacity.DoAttempt):
            attempts += 1
            left = max(0.05, stop.remaining())
            answer = yield Fetch(request(left), max_bytes, total=left)
            state.set_result(classify(answer))
        elif isinstance(action, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            yield Sleep(float(action))
        else:
            return action, attempts


def signature_flow(
    endpoints: Endpoints,
    *,
    chat_id: str,
    model: str,
    policy: VerificationPolicy,
    monotonic: Callable[[], float] = time.monotonic,
    finished_age: float | None = None,
    signature_ttl: float = 1200.0,
    retry_after_cap: float = 10.0,
    backoff: tenacity.wait.wait_base | None = None,
) -> Flow[SignatureFetch]:
    """Fetch the signature of ``chat_id``; ``finished_age`` is how long ago the response ended."""
    url = f"{endpoints.base_url}/signature/{quote(chat_id, safe='')}"
    params = {"model": model, "signing_algo": policy.signing_algo}
    last, attempts = yield from retried_fetch(
        lambda left: endpoints.build("GET", url, params=params, timeout=left),
        classify,
        max_bytes=MAX_SIGNATURE_BYTES,
        deadline=policy.signature_deadline,
        monotonic=monotonic,
        retry_after_cap=retry_after_cap,
        backoff=backoff,
    )
    if last.record is not None:
        logger.debug("signature for %s fetched after %d attempt(s)", chat_id, attempts)
        return SignatureFetch(last.record, None, attempts, f"signature attempts={attempts}")
    reason = last.reason or Reason.SIGNATURE_UNAVAILABLE
    if (
        reason is Reason.SIGNATURE_UNAVAILABLE
        and finished_age is not None
        and finished_age > signature_ttl
    ):
        reason = Reason.SIGNATURE_EXPIRED
    detail = f"signature attempts={attempts}; last: {last.detail}"
    logger.debug("signature for %s unavailable: %s", chat_id, detail)
    return SignatureFetch(None, reason, attempts, detail)
