"""``ResponseUnreadable``: a chat answer that arrived but could not be read, and that decision.

The error lives with the adapters, not in :mod:`redpill_integrations.errors`, because it is an
``openai.APIError`` and its classification (:meth:`ResponseUnreadable.reason_for`) reads OpenAI SDK
and httpx exceptions: the pure core must import neither. It is still a
:class:`~redpill_integrations.errors.TransportError` and exported at the package root.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai

from redpill_integrations.errors import RedpillError, TransportError
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import CapturedExchange

__all__ = ["ResponseUnreadable"]


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
    that handles failed chat calls the OpenAI way catches it.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        reason: Reason,
        result: VerificationResult,
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
        result: VerificationResult,
        cause: BaseException,
        *,
        reason: Reason,
        response: Any = None,
    ) -> ResponseUnreadable:
        """The error for ``exchange`` (verified as ``result``) that its client failed to read."""
        what = "broke off" if reason is Reason.STREAM_INCOMPLETE else "could not be parsed"
        verdict = f"verdict {result.status.value}, receipt {result.receipt_id}"
        return cls(
            f"Redpill chat {exchange.chat_id or '(no id)'}: the response {what} "
            f"({type(cause).__name__}); {verdict}",
            request=httpx.Request("POST", exchange.url),
            reason=reason,
            result=result,
            body=exchange.response_body,
            response=response,
        )
