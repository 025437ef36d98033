"""Fetching an ACI receipt and an upstream session record (``docs/aci-wire.md`` §3).

``GET {base}/aci/receipts/{X-Receipt-Id}`` with the same API key as the chat (the gateway keeps
the receipt for its owner: the sha256 of the bearer token). The receipt is stored when the
response completes, and kept in one replica's memory, so a 404 is retried ("not yet", "another
replica") with the retry composition of :mod:`.fetch_signature` until the next wait would leave
the next attempt less than its minimum time before ``policy.signature_deadline``. Per answer:

* 200 → the body exactly as received, final at once: parsing and every check is the pure core's
  (a body with duplicate keys is ``DUPLICATE_JSON_KEY`` there, never retried);
* 404 → retried; past the budget ``RECEIPT_UNAVAILABLE``;
* 401 (no or another owner) → ``RECEIPT_UNAVAILABLE`` at once, with that detail;
* 429 → retried, honouring ``Retry-After``; past the budget ``RATE_LIMITED``;
* 5xx, connection errors, timeouts → retried; then ``UPSTREAM_HTTP_ERROR`` / ``TIMEOUT``;
* other statuses → ``RECEIPT_UNAVAILABLE`` at once; a body over the cap ``RESPONSE_TOO_LARGE``.

``GET {base}/aci/sessions/{id}`` (same key) is one bounded attempt: the body on 200, else nothing
(the judge says ``SESSION_UNAVAILABLE`` when the policy needed it).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from urllib.parse import quote

import tenacity

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason
from redpill_integrations.wire.fetch_signature import _retry_after, retried_fetch
from redpill_integrations.wire.flow import Fetched, FetchFailed, Flow
from redpill_integrations.wire.http import DEFAULT_TIMEOUT, Budget, Endpoints

__all__ = ["ReceiptFetch", "classify_receipt", "receipt_flow", "session_flow"]

MAX_RECEIPT_BYTES = 256 * 1024
MAX_SESSION_BYTES = 4 * 1024 * 1024
_SESSION_ID = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptFetch:
    """The whole retried fetch: the body (200) or the reason there is none."""

    body: bytes | None
    reason: Reason | None
    attempts: int
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    body: bytes | None = None
    reason: Reason | None = None
    retryable: bool = False
    retry_after: float | None = None
    detail: str = ""


def classify_receipt(answer: Fetched | FetchFailed) -> _Answer:
    """What one answer to a receipt lookup means (pure; exposed for tests)."""
    if isinstance(answer, FetchFailed):
        retry = answer.reason is not Reason.RESPONSE_TOO_LARGE
        return _Answer(reason=answer.reason, retryable=retry, detail=answer.detail)
    status = answer.status_code
    if status == 200:
        return _Answer(body=answer.body)
    if status == 404:
        return _Answer(reason=Reason.RECEIPT_UNAVAILABLE, retryable=True, detail="404")
    if status == 401:
        detail = "401: the gateway refused our API key for this receipt"
        return _Answer(reason=Reason.RECEIPT_UNAVAILABLE, detail=detail)
    if status == 429:
        after = _retry_after(answer.headers.get("retry-after"), time.time())
        return _Answer(reason=Reason.RATE_LIMITED, retryable=True, retry_after=after, detail="429")
    if status >= 500:
        return _Answer(reason=Reason.UPSTREAM_HTTP_ERROR, retryable=True, detail=f"HTTP {status}")
    return _Answer(reason=Reason.RECEIPT_UNAVAILABLE, detail=f"HTTP {status}")


def receipt_flow(
    endpoints: Endpoints,
    *,
    receipt_id: str,
    policy: VerificationPolicy,
    monotonic: Callable[[], float] = time.monotonic,
    backoff: tenacity.wait.wait_base | None = None,
) -> Flow[ReceiptFetch]:
    """Fetch the receipt named by ``X-Receipt-Id`` (see the module docstring)."""
    url = f"{endpoints.base_url}/aci/receipts/{quote(receipt_id, safe='')}"
    last, attempts = yield from retried_fetch(
        lambda left: endpoints.build("GET", url, timeout=left),
        classify_receipt,
        max_bytes=MAX_RECEIPT_BYTES,
        deadline=policy.signature_deadline,
        monotonic=monotonic,
        backoff=backoff,
    )
    if last.body is not None:
        return ReceiptFetch(last.body, None, attempts, f"receipt attempts={attempts}")
    reason = last.reason or Reason.RECEIPT_UNAVAILABLE
    return ReceiptFetch(None, reason, attempts, f"receipt attempts={attempts}; last: {last.detail}")


def session_flow(
    endpoints: Endpoints,
    *,
    session_id: str,
    monotonic: Callable[[], float] = time.monotonic,
) -> Flow[bytes | None]:
    """The session record's bytes as received, or None (unfetchable, or not a session id)."""
    if not _SESSION_ID.fullmatch(session_id):
        return None  # never put a server-chosen string into a URL path unchecked
    budget = Budget(DEFAULT_TIMEOUT.read or 30.0, monotonic)
    url = f"{endpoints.base_url}/aci/sessions/{session_id}"
    answer = yield from endpoints.fetch(budget, "GET", url, MAX_SESSION_BYTES)
    if isinstance(answer, Fetched) and answer.status_code == 200:
        return answer.body
    return None
