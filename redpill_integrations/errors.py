"""The package's one error tree.

Every exception this package raises on purpose derives from :class:`RedpillError`::

    RedpillError
    ├── ConfigurationError          bad settings: unknown trust file, empty allowlist, bad URL, ...
    ├── TransportError              the network or a server failed us (says nothing of evidence)
    │   ├── UpstreamTimeout
    │   ├── UpstreamHTTPError       carries status_code
    │   ├── RateLimited             carries retry_after
    │   ├── ResponseTooLarge
    │   └── ResponseUnreadable      the chat answer could not be read; also an openai.APIError
    ├── EvidenceError               evidence could not be parsed into our models
    │   ├── MalformedEvidence       truncated hex, wrong types, wrong lengths, bad JSON, ...
    │   ├── DuplicateJSONKey
    │   └── UnsupportedProtocol     a report shape we do not verify (chutes, tinfoil, unknown)
    ├── ReceiptError                a receipt that cannot be read, stored or re-verified
    └── VerificationFailed          strict mode: the verdict was not "verified"

Each error with a matching reason code (SPEC §3) exposes it as ``reason`` so that callers that turn
an error into a verdict never have to guess. Foreign exceptions are re-raised as ours with ``from``.
Messages never contain the API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import openai

from redpill_integrations.results import Reason

if TYPE_CHECKING:
    from redpill_integrations.results import VerificationResult
    from redpill_integrations.wire.capture import CapturedExchange

__all__ = [
    "ConfigurationError",
    "DuplicateJSONKey",
    "EvidenceError",
    "MalformedEvidence",
    "RateLimited",
    "ReceiptError",
    "RedpillError",
    "ResponseTooLarge",
    "ResponseUnreadable",
    "TransportError",
    "UnsupportedProtocol",
    "UpstreamHTTPError",
    "UpstreamTimeout",
    "VerificationFailed",
]


class RedpillError(Exception):
    """Root of every error this package raises on purpose."""

    reason: Reason | None = None


class ConfigurationError(RedpillError):
    """Settings that cannot work (never silently replaced by a permissive default)."""


class TransportError(RedpillError):
    """A server or the network failed; says nothing about the evidence itself."""

    reason: Reason | None = Reason.UPSTREAM_HTTP_ERROR


class UpstreamTimeout(TransportError):
    reason = Reason.TIMEOUT


class UpstreamHTTPError(TransportError):
    reason = Reason.UPSTREAM_HTTP_ERROR

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RateLimited(TransportError):
    reason = Reason.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ResponseTooLarge(TransportError):
    reason = Reason.RESPONSE_TOO_LARGE


class ResponseUnreadable(TransportError, openai.APIError):
    """A chat answer the client could not read: the stream broke off, or the body did not parse.

    Raised by ``ChatRedpill`` and ``Redpill`` (any mode but ``"off"``) when

    * a completed 2xx answer cannot be parsed by the OpenAI SDK (JSON nested too deep, a shape it
      rejects): ``reason`` is ``MALFORMED_RESPONSE``; the exchange was still verified, so
      ``result`` is the verdict on those exact bytes (it may well be ``verified``);
    * a stream breaks off mid-way (connection reset, read timeout): ``reason`` is
      ``STREAM_INCOMPLETE``, ``result`` the verdict (unverifiable ``STREAM_INCOMPLETE``) and
      ``response`` what was delivered so far (a LangChain message, a LlamaIndex ``ChatResponse``).

    Nothing is lost: ``body`` holds the raw response bytes as received (the receipt holds them
    too), and the original error is the ``__cause__``. It is also an ``openai.APIError``, so code
    that handles failed chat calls the OpenAI way catches it. ``result`` is ``None`` only if the
    verification itself crashed (logged).
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        reason: Reason,
        result: VerificationResult | None,
        body: bytes,
        response: Any = None,
    ) -> None:
        openai.APIError.__init__(self, message, request, body=body)
        self.reason = reason
        self.result = result
        self.body: bytes = body
        self.response = response

    @staticmethod
    def reason_for(exchange: CapturedExchange | None, cause: BaseException) -> Reason | None:
        """Why the answer in ``exchange`` was unreadable, judging by ``cause`` (what the client
        raised while reading it), or ``None``: not this error (an HTTP error, a cancellation, an
        error of ours, no 2xx answer), which keeps its own way out."""
        if (
            exchange is None
            or not isinstance(cause, Exception)
            or isinstance(cause, openai.APIError | RedpillError)
            or not 200 <= exchange.status_code < 300
        ):
            return None
        if exchange.streamed:
            if isinstance(cause, httpx.TransportError):
                return Reason.STREAM_INCOMPLETE
            unparsed = isinstance(cause, ValueError | RecursionError)
            return Reason.MALFORMED_RESPONSE if unparsed else None
        return Reason.MALFORMED_RESPONSE if exchange.complete else None

    @classmethod
    def of(
        cls,
        exchange: CapturedExchange,
        result: VerificationResult | None,
        cause: BaseException,
        *,
        reason: Reason,
        response: Any = None,
    ) -> ResponseUnreadable:
        """The error for ``exchange`` (verified as ``result``) that its client failed to read."""
        what = "broke off" if reason is Reason.STREAM_INCOMPLETE else "could not be parsed"
        verdict = (
            f"verdict {result.status.value}, receipt {result.receipt_id}"
            if result is not None
            else "verification crashed (see the log)"
        )
        return cls(
            f"Redpill chat {exchange.chat_id or '(no id)'}: the response {what} "
            f"({type(cause).__name__}); {verdict}",
            request=httpx.Request("POST", exchange.url),
            reason=reason,
            result=result,
            body=exchange.response_body,
            response=response,
        )


class EvidenceError(RedpillError):
    """Evidence that could not be parsed into the package's models."""

    reason: Reason | None = Reason.MALFORMED_RESPONSE


class MalformedEvidence(EvidenceError):
    reason = Reason.MALFORMED_RESPONSE


class DuplicateJSONKey(EvidenceError):
    reason = Reason.DUPLICATE_JSON_KEY


class UnsupportedProtocol(EvidenceError):
    reason = Reason.UNSUPPORTED_PROTOCOL


class ReceiptError(RedpillError):
    """A receipt that cannot be read, written or re-verified."""


class VerificationFailed(RedpillError):
    """Raised in strict mode when a verdict is not ``verified``.

    Nothing is lost: ``response`` carries what the caller would otherwise have received (a LangChain
    ``ChatResult``/message, a LlamaIndex ``ChatResponse``, or the raw content), and ``result`` the
    verdict with its reasons.
    """

    def __init__(self, result: VerificationResult, *, response: Any = None) -> None:
        reasons = ", ".join(r.value for r in result.reasons) or "none"
        super().__init__(
            f"Redpill verification {result.status.value} for chat {result.chat_id!s}: {reasons}"
        )
        self.result = result
        self.response = response
        self.reason = result.reasons[0] if result.reasons else None
