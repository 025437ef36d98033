"""One verified call, for both framework adapters: the decisions are made here, once.

The adapters translate a framework call into :meth:`VerifiedCalls.call` /
:meth:`~VerifiedCalls.stream` (and their async twins) and the verdict into framework metadata and
events through a small :class:`Host` they implement; nothing else. This module owns:

* the strict pre-check, asked of the verifier at each call (:meth:`RedpillVerifier.precheck`:
  under ACI the gateway's cached ``/v1/models`` listing, ``is_tee: false`` refused; under the
  legacy protocol its TEE-prefix rule), so the adapter and the verdict never disagree on which
  models are verifiable. Never at construction: knowing the protocol takes a request;
* the capture tag life-cycle: every path takes its exchange exactly once
  (:meth:`VerifiedCall.take`);
* the request: the capture header, and :func:`request_fields` (async paths:
  :func:`arequest_fields`) merged into the SDK call's ``extra_body`` (the body the capture
  records is the body sent, those fields included: the ACI receipt must match it);
* the order on every verdict: attach it to the response, emit the event, then enforce the mode
  (``strict`` raises :class:`VerificationFailed` carrying the response; nothing is lost);
* an answer that arrived but could not be read (a complete 2xx body the SDK could not parse, a
  stream that broke off): verified all the same, then raised as :class:`ResponseUnreadable`
  carrying the verdict, the raw bytes and what was delivered, ``from`` the original error;
* an HTTP error answer the ACI gateway signed a receipt for (a refusal to forward to an upstream
  it could not verify, sent because strict mode asked for ``aci_verified``): verified for its
  receipt (``UPSTREAM_REFUSED``), emitted, then strict raises :class:`VerificationFailed` carrying
  the SDK's error and annotate re-raises that error (there is no content to return);
* a stream its consumer abandoned: its live response is closed at once (the capture is filed as
  incomplete), the exchange verified for its receipt, the event emitted (``delivered=False``) and
  a warning logged (as for a stream that broke off), never raised; a call that failed before
  delivering anything keeps its own error (an HTTP error of the chat call has no verdict).

``RedpillVerifier.verify`` never raises (its crash guard turns a bug of ours into
``CHECK_NOT_RUN``), so no path here needs a guard of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import openai

from redpill_integrations._adapter.live import LiveResponses
from redpill_integrations._adapter.modes import VerificationMode, enforce, model_not_tee
from redpill_integrations._adapter.unreadable import ResponseUnreadable
from redpill_integrations.errors import VerificationFailed
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER, CapturedExchange, RedpillVerifier

__all__ = [
    "AsyncHost",
    "AsyncRequestFields",
    "AsyncStreamHost",
    "Host",
    "RequestFields",
    "StreamHost",
    "VerifiedCall",
    "VerifiedCalls",
    "arequest_fields",
    "request_fields",
]

logger = logging.getLogger("redpill_integrations")

R = TypeVar("R")
C = TypeVar("C")

#: Extra request-body fields for one call, from the verifier (its policy) and the mode; merged
#: into the SDK call's ``extra_body``. Called once per call, so a field may differ per call.
RequestFields = Callable[[RedpillVerifier, VerificationMode], Mapping[str, Any]]


#: The async twin of :data:`RequestFields` (async calls never block their event loop).
AsyncRequestFields = Callable[[RedpillVerifier, VerificationMode], Awaitable[Mapping[str, Any]]]

#: The prefix of the per-request nonce put in the ``user`` field (``policy.request_nonce``).
NONCE_PREFIX = "rp-"


def request_fields(verifier: RedpillVerifier, mode: VerificationMode) -> Mapping[str, Any]:
    """The fields every verified call adds to its request body: the verifier's
    :meth:`~RedpillVerifier.request_extras` (the ACI ``aci_verified`` constraint in strict mode),
    and the request nonce.

    This is the one place where a protocol or a security measure adds what it needs the server
    to see. ``policy.request_nonce``: ``"user": "rp-<32 random hex>"``, a field OpenAI-compatible
    servers accept and ignore, covered by the signed request hash like the rest of the body, so
    no signature made for an earlier request can match this one (docs/code-identity.md, replay).
    A ``user`` the caller set is kept in front of it (``"<caller's>:rp-…"``).
    """
    return {**verifier.request_extras(mode), **_nonce(verifier)}


async def arequest_fields(verifier: RedpillVerifier, mode: VerificationMode) -> Mapping[str, Any]:
    """:func:`request_fields` for async calls."""
    return {**await verifier.arequest_extras(mode), **_nonce(verifier)}


def _nonce(verifier: RedpillVerifier) -> dict[str, str]:
    if verifier.policy.request_nonce:
        return {"user": NONCE_PREFIX + secrets.token_hex(16)}
    return {}


class Host(Protocol[R]):
    """What a framework adapter does with a verdict on a response of type ``R``."""

    def attach(self, response: R, result: VerificationResult) -> R:
        """``response`` carrying ``result`` in the framework's metadata."""
        ...

    def emit(self, result: VerificationResult, *, delivered: bool) -> None:
        """Tell the framework's observers (one event per verdict)."""
        ...

    def carried(self, response: R) -> Any:
        """What ``VerificationFailed.response`` carries for ``response``."""
        ...


class AsyncHost(Host[R], Protocol[R]):
    async def aemit(self, result: VerificationResult, *, delivered: bool) -> None: ...


class StreamHost(Protocol[C]):
    """What a framework adapter does around a verified stream of chunks of type ``C``."""

    def seen(self, chunk: C) -> None:
        """A chunk passed to the consumer (keep what :meth:`final`/:meth:`delivered` need)."""
        ...

    def final(self, result: VerificationResult) -> C:
        """The one trailing chunk that carries ``result``."""
        ...

    def emit(self, result: VerificationResult, *, delivered: bool) -> None: ...

    def carried(self, final: C) -> Any:
        """What ``VerificationFailed.response`` carries: the whole message, ``final`` included."""
        ...

    def delivered(self) -> Any:
        """What the consumer received before the stream ended early (``None``: nothing)."""
        ...

    def yielding(self, final: C) -> None:
        """Just before ``final`` is yielded (after the mode was enforced)."""
        ...

    def releasing(self, chunk: C) -> None:
        """Just before a held chunk is yielded (``hold``: after the mode was enforced)."""
        ...


class AsyncStreamHost(StreamHost[C], Protocol[C]):
    async def aemit(self, result: VerificationResult, *, delivered: bool) -> None: ...

    async def ayielding(self, final: C) -> None: ...

    async def areleasing(self, chunk: C) -> None: ...


@dataclasses.dataclass(slots=True)
class VerifiedCall:
    """One tagged call: its request kwargs and, once, its captured exchange."""

    verifier: RedpillVerifier
    tag: str
    kwargs: dict[str, Any]
    live: LiveResponses | None = None
    taken: bool = False

    def take(self) -> CapturedExchange | None:
        """The exchange filed under the tag; only the first call gets it (then ``None``)."""
        if self.taken:
            return None
        self.taken = True
        if self.live is not None:
            self.live.pop(self.tag)
        return self.verifier.recorder.take(self.tag)

    def close_response(self) -> None:
        """Close an abandoned stream's live response now: its capture is filed as incomplete."""
        response = self.live.pop(self.tag) if self.live is not None else None
        if response is not None:
            response.close()

    async def aclose_response(self) -> None:
        response = self.live.pop(self.tag) if self.live is not None else None
        if response is not None:
            await response.aclose()

    def unreadable(self, exc: BaseException) -> tuple[CapturedExchange, Reason | None] | None:
        """After the SDK call raised ``exc``: its exchange to verify anyway and why it was
        unreadable (``None``: an HTTP error answer the gateway signed a receipt for, an ACI
        refusal, see :func:`receipted_error`), or ``None`` (``exc`` keeps its own way out; the
        capture is dropped)."""
        exchange = self.take()
        reason = ResponseUnreadable.reason_for(exchange, exc)
        if exchange is None or (reason is None and not receipted_error(exchange, exc)):
            return None
        return exchange, reason

    def ended_early(
        self, exc: BaseException, delivered: bool
    ) -> tuple[CapturedExchange | None, Reason | None] | None:
        """A stream that ended with ``exc``: the exchange to verify for its receipt and, when it
        broke off, why; ``None`` when it neither delivered nor broke nor was a receipted refusal
        (``exc`` keeps its way)."""
        exchange = self.take()
        reason = ResponseUnreadable.reason_for(exchange, exc)
        if reason is None and not delivered and not receipted_error(exchange, exc):
            return None
        return exchange, reason


def receipted_error(exchange: CapturedExchange | None, exc: BaseException) -> bool:
    """Whether the SDK raised ``exc`` for an HTTP error answer that carries ``X-Receipt-Id``:
    the ACI gateway signed a receipt for it (a refusal to forward, 503/412), so the exchange is
    verified (verdict ``UPSTREAM_REFUSED``) and gets its one receipt like any other."""
    return (
        exchange is not None
        and isinstance(exc, openai.APIStatusError)
        and not 200 <= exchange.status_code < 300
        and "x-receipt-id" in exchange.headers
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifiedCalls:
    """The verified calls of one adapter instance (a mode other than ``"off"``)."""

    verifier: RedpillVerifier
    mode: VerificationMode
    live: LiveResponses | None = None
    #: the request-fields hook; ``None``: :func:`request_fields` (looked up at each call)
    fields: RequestFields | None = None
    #: its async twin; ``None``: :func:`arequest_fields`
    afields: AsyncRequestFields | None = None
    #: hold a stream's chunks until its verdict: released only after it was enforced (in strict
    #: mode: only once ``verified``; a failure's ``VerificationFailed`` carries all content)
    hold: bool = False

    def precheck(self, model: str | None) -> None:
        """Strict mode refuses, before sending, a model the verifier says it cannot verify
        (:meth:`RedpillVerifier.precheck`: the first call probes the gateway, later ones hit its
        cache). Other modes send, and the verdict says why it is not ``verified``."""
        if self.mode == "strict" and self.verifier.precheck(model) is not None:
            # the gateway's answer is cached by the pre-check that just ran
            raise self._refusal(model, self.verifier.gateway().protocol)

    async def aprecheck(self, model: str | None) -> None:
        if self.mode == "strict" and await self.verifier.aprecheck(model) is not None:
            raise self._refusal(model, (await self.verifier.agateway()).protocol)

    def _refusal(self, model: str | None, protocol: str) -> Exception:
        """The pre-check's one refusal (``MODEL_NOT_TEE``), worded for the rule that refused:
        the ACI gateway's listing, or the legacy protocol's TEE prefixes."""
        prefixes = self.verifier.tee_model_prefixes
        return model_not_tee(model, prefixes, listed=protocol == "aci")

    def start(
        self,
        model: str | None,
        kwargs: Mapping[str, Any],
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> VerifiedCall:
        """Pre-check, tag and dress one call. ``extra_headers``/``extra_body`` are what the
        framework would send when ``kwargs`` names none (per-call values replace them)."""
        self.precheck(model)
        fields = (self.fields or request_fields)(self.verifier, self.mode)
        return self._dress(kwargs, fields, extra_headers, extra_body)

    async def astart(
        self,
        model: str | None,
        kwargs: Mapping[str, Any],
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> VerifiedCall:
        """:meth:`start` for async calls: the pre-check and the request fields are awaited."""
        await self.aprecheck(model)
        fields = await (self.afields or arequest_fields)(self.verifier, self.mode)
        return self._dress(kwargs, fields, extra_headers, extra_body)

    def _dress(
        self,
        kwargs: Mapping[str, Any],
        fields: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None,
        extra_body: Mapping[str, Any] | None,
    ) -> VerifiedCall:
        tag = self.verifier.recorder.new_tag()
        headers = kwargs.get("extra_headers") or extra_headers or {}
        dressed = {**kwargs, "extra_headers": {**headers, CAPTURE_HEADER: tag}}
        if fields:
            body = kwargs.get("extra_body") or extra_body or {}
            merged = {**body, **fields}
            caller_user = body.get("user") or kwargs.get("user")
            if "user" in fields and isinstance(caller_user, str) and caller_user:
                merged["user"] = f"{caller_user}:{fields['user']}"
            dressed["extra_body"] = merged
        return VerifiedCall(verifier=self.verifier, tag=tag, kwargs=dressed, live=self.live)

    # -- one response ---------------------------------------------------------------------------

    def settle(self, response: R, result: VerificationResult, host: Host[R]) -> R:
        """Attach → emit → enforce."""
        response = host.attach(response, result)
        host.emit(result, delivered=True)
        enforce(self.mode, result, host.carried(response))
        return response

    async def asettle(self, response: R, result: VerificationResult, host: AsyncHost[R]) -> R:
        response = host.attach(response, result)
        await host.aemit(result, delivered=True)
        enforce(self.mode, result, host.carried(response))
        return response

    def call(self, call: VerifiedCall, send: Callable[[dict[str, Any]], R], host: Host[R]) -> R:
        """``send(call.kwargs)`` (the framework's own call), verified."""
        try:
            response = send(call.kwargs)
        except BaseException as exc:
            failed = call.unreadable(exc)
            if failed is None:
                raise
            exchange, reason = failed
            result = self.verifier.verify(exchange)
            host.emit(result, delivered=False)
            if reason is None:
                self._refused(result, exc)
                raise
            raise ResponseUnreadable.of(exchange, result, exc, reason=reason) from exc
        return self.settle(response, self.verifier.verify(call.take()), host)

    async def acall(
        self, call: VerifiedCall, send: Callable[[dict[str, Any]], Awaitable[R]], host: AsyncHost[R]
    ) -> R:
        try:
            response = await send(call.kwargs)
        except BaseException as exc:
            failed = call.unreadable(exc)
            if failed is None:
                raise
            exchange, reason = failed
            result = await self.verifier.averify(exchange)
            await host.aemit(result, delivered=False)
            if reason is None:
                self._refused(result, exc)
                raise
            raise ResponseUnreadable.of(exchange, result, exc, reason=reason) from exc
        return await self.asettle(response, await self.verifier.averify(call.take()), host)

    # -- streams ----------------------------------------------------------------------------------

    def stream(self, call: VerifiedCall, inner: Iterator[C], host: StreamHost[C]) -> Iterator[C]:
        """Pass every chunk of ``inner`` at once (with :attr:`hold`: after the verdict was
        enforced), then one trailing chunk with the verdict."""
        delivered = False
        held: list[C] = []
        try:
            for chunk in inner:
                delivered = True
                host.seen(chunk)
                if self.hold:
                    held.append(chunk)
                else:
                    yield chunk
        except BaseException as exc:  # stopped early, or the stream failed: keep the receipt
            _close(inner)
            call.close_response()
            ended = call.ended_early(exc, delivered)
            if ended is None:
                raise
            exchange, reason = ended
            result = self.verifier.verify(exchange)
            host.emit(result, delivered=False)
            if reason is None and not delivered:  # refused before any chunk
                self._refused(result, exc)
                raise
            error = self._ended(exchange, reason, result, exc, host)
            if error is None:
                raise
            raise error from exc
        result = self.verifier.verify(call.take())
        final = host.final(result)
        host.emit(result, delivered=True)
        enforce(self.mode, result, host.carried(final))
        for chunk in held:
            host.releasing(chunk)
            yield chunk
        host.yielding(final)
        yield final

    async def astream(
        self, call: VerifiedCall, inner: AsyncIterator[C], host: AsyncStreamHost[C]
    ) -> AsyncIterator[C]:
        delivered = False
        held: list[C] = []
        try:
            async for chunk in inner:
                delivered = True
                host.seen(chunk)
                if self.hold:
                    held.append(chunk)
                else:
                    yield chunk
        except BaseException as exc:
            await _aclose(inner)
            await call.aclose_response()
            ended = call.ended_early(exc, delivered)
            if ended is None:
                raise
            exchange, reason = ended
            result = await self.verifier.averify(exchange)
            await host.aemit(result, delivered=False)
            if reason is None and not delivered:  # refused before any chunk
                self._refused(result, exc)
                raise
            error = self._ended(exchange, reason, result, exc, host)
            if error is None:
                raise
            raise error from exc
        result = await self.verifier.averify(call.take())
        final = host.final(result)
        await host.aemit(result, delivered=True)
        enforce(self.mode, result, host.carried(final))
        for chunk in held:
            await host.areleasing(chunk)
            yield chunk
        await host.ayielding(final)
        yield final

    def _refused(self, result: VerificationResult, exc: BaseException) -> None:
        """An HTTP error answer with a gateway receipt, verified as ``result``: strict raises
        :class:`VerificationFailed` carrying the SDK's error (``from`` it); annotate logs; the
        caller then re-raises the SDK's error as it is."""
        if self.mode == "strict" and not result.verified:
            raise VerificationFailed(result, response=exc) from exc
        enforce(self.mode, result, exc, context=" (the gateway answered an error)")

    def _ended(
        self,
        exchange: CapturedExchange | None,
        reason: Reason | None,
        result: VerificationResult,
        exc: BaseException,
        host: StreamHost[C],
    ) -> ResponseUnreadable | None:
        """Log a stream that ended early (its receipt records it); the error for one that broke
        off, or ``None`` for one the consumer abandoned (``exc`` is then raised as it is)."""
        logger.warning(
            "Redpill stream for chat %s ended early: %s %s (receipt %s)",
            result.chat_id,
            result.status.value,
            ", ".join(r.value for r in result.reasons),
            result.receipt_id,
        )
        if exchange is None or reason is None:
            return None
        return ResponseUnreadable.of(
            exchange, result, exc, reason=reason, response=host.delivered()
        )


def _close(inner: Iterator[Any]) -> None:
    close = getattr(inner, "close", None)
    if close is not None:
        close()


async def _aclose(inner: AsyncIterator[Any]) -> None:
    aclose = getattr(inner, "aclose", None)
    if aclose is not None:
        await aclose()
