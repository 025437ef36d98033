"""``RedpillVerifier``: the facade that turns a captured exchange into a VerificationResult.

The contract the adapters rely on::

    verifier = RedpillVerifier(base_url=..., api_key=..., policy=..., trust=..., receipt_store=...)
    client = openai.OpenAI(base_url=..., api_key=..., http_client=verifier.http_client())
    tag = verifier.recorder.new_tag()
    client.chat.completions.create(..., extra_headers={CAPTURE_HEADER: tag})
    result = verifier.verify(verifier.recorder.take(tag))     # or: await verifier.averify(...)

* ``http_client(inner=None)`` / ``async_http_client(inner=None)``: capturing clients for
  ``openai.OpenAI(http_client=...)`` / ``AsyncOpenAI``. A user's own client (or transport) given as
  ``inner`` is kept: requests go through its public ``send(request, stream=True)``, so its proxies
  and hooks keep working. The clients never follow redirects.
* ``verify``/``averify`` never raise for evidence or network problems: they always return a result
  and write exactly one receipt per call when a ``receipt_store`` is set (``result.receipt_id``);
  ``verify_exchange``/``averify_exchange`` return the :class:`Receipt` itself (its ``result`` is the
  verdict; ``receipt.signature_attempts`` counts signature fetches). ``None`` →
  ``MALFORMED_RESPONSE``.
* ``attest(model, signer=None, progress=None)``/``aattest``: a fresh (uncached) legacy attestation
  with its evidence, for ``redpill attest``; ``progress(step)`` sees ``report``, ``collateral``,
  ``gpu``, ``jwks``, ``verify``. ``attest_gateway(progress=None)``/``aattest_gateway``: the same
  for an ACI gateway's identity (:class:`~.fetch_gateway.GatewayAttestation`; steps ``report``,
  ``collateral``, ``verify``).
* ``gateway()``, ``models()``, ``model_info(model)``, ``precheck(model)``,
  ``request_extras(mode)`` (and ``a…`` twins): what the gateway speaks, its model listing, what
  the strict pre-check refuses, the per-call request fields (:mod:`.gateway`).
* ``is_tee_model(model)``: whether this verifier can verify ``model`` at all (the adapters' strict
  pre-check asks it, so they and the verdict never disagree).
* Settings beyond the shared contract: ``sleep``/``asleep``/``monotonic`` (tests inject them so
  retries never really wait), ``tee_model_prefixes`` (default ``("phala/",)``; other models are
  ``MODEL_NOT_TEE`` without any fetch), ``signature_ttl`` (default 1200 s, see
  :mod:`.fetch_signature`), ``transport``/``async_transport`` (inner transports of the fetchers'
  own clients).

Both sync and async run the same :class:`~redpill_integrations.wire.verify_flow.VerifyFlow` flows
through :func:`~redpill_integrations.wire.flow.run_sync` / ``run_async``; the protocols it
dispatches to are listed in ``__init__`` (see :mod:`.protocols` to add one). A crash of ours
anywhere in a verification is caught here, once, as ``CHECK_NOT_RUN``, and still leaves its one
receipt. The API key is a ``SecretStr``: it
is never in reprs, logs, exceptions or receipts, and goes to the base URL's origin only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import tenacity
from pydantic import SecretStr

from redpill_integrations.errors import ConfigurationError
from redpill_integrations.otel import record_verdict
from redpill_integrations.policy import (
    DEFAULT_BASE_URL,
    TEE_MODEL_PREFIXES,
    TrustAnchors,
    VerificationPolicy,
)
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify import CRASHED
from redpill_integrations.verify.encoding import sha256_hex
from redpill_integrations.wire.aci import AciProtocol
from redpill_integrations.wire.cache import SingleFlightCache
from redpill_integrations.wire.capture import (
    AsyncCapturingTransport,
    CapturedExchange,
    CapturingTransport,
    ExchangeRecorder,
)
from redpill_integrations.wire.fetch_attestation import AttestationOutcome
from redpill_integrations.wire.fetch_gateway import GatewayAttestation
from redpill_integrations.wire.flow import Flow, run_async, run_sync
from redpill_integrations.wire.gateway import (
    GatewayInfo,
    GatewayProbe,
    ModelInfo,
    aci_extras,
    gateway_flow,
    precheck_reason,
)
from redpill_integrations.wire.guard import aguard_json, guard_json
from redpill_integrations.wire.http import (
    DEFAULT_TIMEOUT,
    FETCH_CONCURRENCY,
    AsyncFetchers,
    Endpoints,
    default_async_transport,
    default_transport,
    is_loopback,
    make_async_client,
    make_client,
    send_sync,
)
from redpill_integrations.wire.legacy import LegacyProtocol
from redpill_integrations.wire.protocols import Judgement
from redpill_integrations.wire.verify_flow import VerifyFlow, astore_receipt, store_receipt

if TYPE_CHECKING:
    from redpill_integrations.receipts import Receipt, ReceiptStore

__all__ = ["RedpillVerifier"]

T = TypeVar("T")

logger = logging.getLogger("redpill_integrations.wire")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _no_progress(step: str) -> None:
    return None


class RedpillVerifier:
    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | SecretStr | None = None,
        policy: VerificationPolicy | None = None,
        trust: TrustAnchors | None = None,
        receipt_store: ReceiptStore | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        asleep: Callable[[float], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] | None = None,
        tee_model_prefixes: tuple[str, ...] = TEE_MODEL_PREFIXES,
        signature_ttl: float = 1200.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        recorder: ExchangeRecorder | None = None,
        backoff: tenacity.wait.wait_base | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("base_url must be an http(s) URL")
        if base_url.startswith("http://") and not is_loopback(base_url):
            raise ConfigurationError(
                "base_url must use https:// (plain http:// would send the API key in clear "
                "text); http:// is accepted only for loopback hosts such as the emulator"
            )
        if isinstance(tee_model_prefixes, str) or not tee_model_prefixes:
            raise ConfigurationError("tee_model_prefixes must be a non-empty tuple of prefixes")
        self.base_url = base_url.rstrip("/")
        key = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        self._key = key if key is not None and key.get_secret_value() else None
        self.policy = policy or VerificationPolicy()
        self.trust = trust or TrustAnchors.production()
        self.trust.warn_if_not_production("a RedpillVerifier")
        self.receipt_store = receipt_store
        self._clock = clock or _utcnow
        self._sleep = sleep or time.sleep
        self._asleep = asleep or asyncio.sleep
        self._monotonic = monotonic or time.monotonic
        self._recorder = recorder or ExchangeRecorder()
        self.cache = SingleFlightCache(monotonic=self._monotonic)
        self._endpoints = Endpoints(
            base_url=self.base_url,
            api_key=self._key,
            extra_urls=(self.trust.pccs_url, self.trust.nras_url, self.trust.nras_jwks_url),
        )
        self._legacy = LegacyProtocol(
            endpoints=self._endpoints,
            policy=self.policy,
            trust=self.trust,
            clock=self._clock,
            monotonic=self._monotonic,
            tee_model_prefixes=tuple(tee_model_prefixes),
            signature_ttl=signature_ttl,
            backoff=backoff,
        )
        self._aci = AciProtocol(
            endpoints=self._endpoints,
            policy=self.policy,
            trust=self.trust,
            clock=self._clock,
            monotonic=self._monotonic,
            backoff=backoff,
        )
        self._flow = VerifyFlow(
            protocols=(self._aci, self._legacy),  # the fallback last; see wire/protocols.py
            base_url=self.base_url,
            policy=self.policy,
            trust=self.trust,
            clock=self._clock,
            store=receipt_store,
        )
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        #: the fetch clients of each event loop (connections belong to the loop that opened them)
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncFetchers] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        key = "set" if self._key is not None else "none"
        return (
            f"RedpillVerifier(base_url={self.base_url!r}, api_key={key}, trust={self.trust.kind!r})"
        )

    @property
    def recorder(self) -> ExchangeRecorder:
        return self._recorder

    @property
    def tee_model_prefixes(self) -> tuple[str, ...]:
        return self._legacy.tee_model_prefixes

    def is_tee_model(self, model: str | None) -> bool:
        """Whether the *legacy* protocol can verify answers of ``model`` at all (its TEE-prefix
        rule; others are ``MODEL_NOT_TEE``). Under ACI ask :meth:`precheck` instead."""
        return self._legacy.is_tee_model(model)

    # -- the gateway: protocol, models, pre-check, request fields ---------------------------

    def _probe(self) -> Flow[GatewayProbe]:
        return gateway_flow(self._endpoints, policy=self.policy, monotonic=self._monotonic)

    def gateway(self) -> GatewayInfo:
        """What the configured gateway speaks (``"aci"`` | ``"legacy"``) and, for ACI, its
        keyset digest: one probe of ``GET {base}/models``, cached for the policy's attestation
        TTL (single-flight). Never raises: an unreachable gateway is ``"legacy"`` with
        ``problem`` set (not cached). See :mod:`.gateway`."""
        return self._run(self._probe()).gateway

    async def agateway(self) -> GatewayInfo:
        return (await self._arun(self._probe())).gateway

    def models(self) -> tuple[ModelInfo, ...]:
        """The models ``/v1/models`` lists (from the same cached probe), in listing order."""
        return tuple(self._run(self._probe()).models.values())

    async def amodels(self) -> tuple[ModelInfo, ...]:
        return tuple((await self._arun(self._probe())).models.values())

    def model_info(self, model: str) -> ModelInfo:
        """``model`` as the listing describes it (``is_tee`` None when unlisted or unflagged)."""
        return self._run(self._probe()).model(model)

    async def amodel_info(self, model: str) -> ModelInfo:
        return (await self._arun(self._probe())).model(model)

    def precheck(self, model: str | None) -> Reason | None:
        """What the strict pre-check should refuse before sending ``model`` (``None``: send).
        Legacy: :meth:`is_tee_model`'s prefix rule. ACI: ``MODEL_NOT_TEE`` only when
        ``/v1/models`` says ``is_tee: false``; unknown → ``None`` (the receipt decides)."""
        return precheck_reason(self._run(self._probe()), model, is_tee_model=self.is_tee_model)

    async def aprecheck(self, model: str | None) -> Reason | None:
        probe = await self._arun(self._probe())
        return precheck_reason(probe, model, is_tee_model=self.is_tee_model)

    def request_extras(self, mode: str) -> dict[str, Any]:
        """Extra request-body fields for one call in ``mode``: ``{"provider": {"aci_verified":
        True}}`` when the gateway is ACI, ``mode == "strict"`` and
        ``policy.send_aci_constraint``; else ``{}``. Only that case probes the gateway. The
        capture records the body as sent, these fields included (the receipt must match it)."""
        if mode != "strict" or not self.policy.send_aci_constraint:
            return {}
        return aci_extras(self._run(self._probe()), mode, self.policy)

    async def arequest_extras(self, mode: str) -> dict[str, Any]:
        if mode != "strict" or not self.policy.send_aci_constraint:
            return {}
        return aci_extras(await self._arun(self._probe()), mode, self.policy)

    # -- capturing clients for the OpenAI SDK ------------------------------------------------

    def http_client(self, inner: httpx.Client | httpx.BaseTransport | None = None) -> httpx.Client:
        """A capturing client for ``openai.OpenAI(http_client=...)``; its ``response.json()``
        refuses JSON nested too deeply (:mod:`.guard`)."""
        transport = CapturingTransport(
            inner if inner is not None else default_transport(),
            base_url=self.base_url,
            recorder=self._recorder,
            max_response_bytes=self.policy.max_response_bytes,
        )
        return httpx.Client(
            transport=transport,
            timeout=DEFAULT_TIMEOUT,
            follow_redirects=False,
            event_hooks={"response": [guard_json]},
        )

    def async_http_client(
        self, inner: httpx.AsyncClient | httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncClient:
        transport = AsyncCapturingTransport(
            inner if inner is not None else default_async_transport(),
            base_url=self.base_url,
            recorder=self._recorder,
            max_response_bytes=self.policy.max_response_bytes,
        )
        return httpx.AsyncClient(
            transport=transport,
            timeout=DEFAULT_TIMEOUT,
            follow_redirects=False,
            event_hooks={"response": [aguard_json]},
        )

    # -- drivers -----------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        with self._lock:
            if self._client is None:
                self._client = make_client(self._transport)
            client, endpoints = self._client, self._endpoints
        return run_sync(
            flow,
            send=lambda fetch: send_sync(client, endpoints, fetch),
            sleep=self._sleep,
            cache=self.cache,
        )

    async def _arun(self, flow: Flow[T]) -> T:
        loop = asyncio.get_running_loop()
        fetchers = self._aclients.get(loop)
        if fetchers is None:
            fetchers = self._aclients[loop] = self._fetchers()
        endpoints = self._endpoints
        return await run_async(
            flow,
            send=lambda fetch: fetchers.send(endpoints, fetch),
            sleep=self._asleep,
            cache=self.cache,
        )

    def _fetchers(self) -> AsyncFetchers:
        transport = self._async_transport
        if transport is not None:  # one given transport: one client, in flight as many as allowed
            return AsyncFetchers(lambda: make_async_client(transport), pool_size=FETCH_CONCURRENCY)
        return AsyncFetchers(make_async_client)

    # -- verification ------------------------------------------------------------------------

    def verify_exchange(self, exchange: CapturedExchange | None) -> Receipt:
        try:
            receipt = self._run(self._flow.verify(exchange))
        except Exception:  # the one crash guard: a bug of ours must not cost the user the response
            logger.exception("verification crashed; verdict is unverifiable")
            receipt = store_receipt(self.receipt_store, self._crashed(exchange))
        record_verdict(receipt.result)  # the caller's current span, when OpenTelemetry is there
        return receipt

    async def averify_exchange(self, exchange: CapturedExchange | None) -> Receipt:
        try:
            receipt = await self._arun(self._flow.verify(exchange))
        except Exception:
            logger.exception("verification crashed; verdict is unverifiable")
            crashed = self._crashed(exchange)
            receipt = await astore_receipt(self.receipt_store, crashed)
        record_verdict(receipt.result)
        return receipt

    def _crashed(self, exchange: CapturedExchange | None) -> Receipt:
        """The receipt of a verification that crashed: ``CHECK_NOT_RUN``, the exchange kept."""
        result = VerificationResult.unverifiable(
            Reason.CHECK_NOT_RUN,
            chat_id=exchange.chat_id if exchange else None,
            model=exchange.model if exchange else None,
            request_sha256=sha256_hex(exchange.request_body) if exchange else None,
            response_sha256=sha256_hex(exchange.response_body) if exchange else None,
            verified_at=self._clock(),
            detail=CRASHED,
        )
        judgement = Judgement(result=result, protocol="crashed")
        return self._flow.receipt(uuid.uuid4().hex, judgement, exchange)

    def verify(self, exchange: CapturedExchange | None) -> VerificationResult:
        """Fetch the signature and (cached) attestation, verify, store one receipt. Never raises
        for evidence or network problems: they become reasons."""
        return self.verify_exchange(exchange).result

    async def averify(self, exchange: CapturedExchange | None) -> VerificationResult:
        return (await self.averify_exchange(exchange)).result

    def attest(
        self,
        model: str,
        *,
        signer: str | None = None,
        progress: Callable[[str], Any] | None = None,
    ) -> AttestationOutcome:
        """Verify ``model``'s attestation now (never cached); the verdict and its evidence."""
        return self._run(
            self._legacy.attest(model, signer=signer, progress=progress or _no_progress)
        )

    async def aattest(
        self,
        model: str,
        *,
        signer: str | None = None,
        progress: Callable[[str], Any] | None = None,
    ) -> AttestationOutcome:
        flow = self._legacy.attest(model, signer=signer, progress=progress or _no_progress)
        return await self._arun(flow)

    def attest_gateway(self, *, progress: Callable[[str], Any] | None = None) -> GatewayAttestation:
        """Verify the ACI gateway's identity now (fresh nonce, never cached): the attestation
        document, nonce and collateral as received and ``verify_gateway``'s verdict (quote and
        TCB, event log, compose hash, app id, OS image, KMS custody, keyset and its expiry,
        source commit). ``progress(step)`` sees ``report``, ``collateral``, ``verify``."""
        return self._run(self._aci.attest(progress=progress or _no_progress))

    async def aattest_gateway(
        self, *, progress: Callable[[str], Any] | None = None
    ) -> GatewayAttestation:
        return await self._arun(self._aci.attest(progress=progress or _no_progress))

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        self.close()
        fetchers = self._aclients.pop(asyncio.get_running_loop(), None)
        if fetchers is not None:
            await fetchers.aclose()
        # clients of other (finished) loops are dropped with their loop

    def __enter__(self) -> RedpillVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RedpillVerifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
