"""The ACI protocol: the attested gateway signs a receipt for every response it serves
(``docs/aci-wire.md``; the pure checks: ``docs/protocol-aci.md``).

Chosen per captured exchange: any ``x-aci-*`` response header claims it (an ACI gateway sets them
on every response), and such an exchange is **never** judged by the legacy path, whatever its
model or shape (a legacy alias of an ACI gateway signs with the gateway's key, not a model
node's). Its judgement, each step able to end it with an exact reason, never an exception:

1. early, nothing fetched: a request without a model → ``MALFORMED_RESPONSE``; a
   ``content-encoding`` on the response (the receipt hashes the bytes on the wire; we hold the
   decoded ones) → ``MALFORMED_RESPONSE``; a refusal (503/412) with ``X-Receipt-Id`` goes on to
   have its refusal receipt verified (verdict ``UPSTREAM_REFUSED``); any other non-2xx →
   ``UPSTREAM_HTTP_ERROR``; capture problems (``STREAM_INCOMPLETE``, ``RESPONSE_TOO_LARGE``…) as
   for every protocol; a 2xx without ``X-Receipt-Id`` → ``RECEIPT_MISSING`` (failed);
2. the receipt, ``GET {base}/aci/receipts/{X-Receipt-Id}``, retried while it is not there yet
   (:mod:`.fetch_receipt`);
3. the session record it names, only when the policy needs it (``check_session`` or
   ``accepted_providers``);
4. the gateway identity for the keyset digest the response's header names, cached per digest
   (:mod:`.fetch_gateway`);
5. ``verify.aci.judge_evidence`` (→ ``judge_aci``) on all of it; the chat's time window is the
   capture's.

Everything fetched goes into the :class:`~redpill_integrations.verify.aci.bundle.AciEvidence` the
receipt keeps, exactly as received. Every request goes through :class:`~.http.Endpoints` (the key
only to the base origin, no redirects, only configured hosts).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import tenacity

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason, VerificationResult, required_checks
from redpill_integrations.verify.aci import REFUSAL_STATUSES
from redpill_integrations.verify.aci.bundle import AciEvidence, judge_evidence
from redpill_integrations.verify.encoding import loads_or_none, sha256_hex
from redpill_integrations.wire.capture import CapturedExchange
from redpill_integrations.wire.fetch_gateway import (
    GatewayAttestation,
    Progress,
    cached_gateway_flow,
    gateway_attestation_flow,
)
from redpill_integrations.wire.fetch_receipt import receipt_flow, session_flow
from redpill_integrations.wire.flow import Flow
from redpill_integrations.wire.gateway import is_aci_headers
from redpill_integrations.wire.http import Endpoints
from redpill_integrations.wire.protocols import Judgement

__all__ = ["AciProtocol", "sent_aci_constraint"]


def sent_aci_constraint(request_body: bytes) -> bool:
    """Whether the request we sent carried ``"provider": {"aci_verified": true}``."""
    data = loads_or_none(request_body)
    provider = data.get("provider") if isinstance(data, dict) else None
    return isinstance(provider, dict) and provider.get("aci_verified") is True


def _session_id(receipt: bytes | None) -> str | None:
    """The ``upstream.verified`` session id a receipt names (a hint: the judge checks it)."""
    data = loads_or_none(receipt) if receipt is not None else None
    events = data.get("event_log") if isinstance(data, dict) else None
    for event in events if isinstance(events, list) else ():
        if isinstance(event, dict) and event.get("type") == "upstream.verified":
            sid = event.get("session_id")
            return sid if isinstance(sid, str) else None
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class AciProtocol:
    endpoints: Endpoints
    policy: VerificationPolicy
    trust: TrustAnchors
    clock: Callable[[], datetime]
    monotonic: Callable[[], float] = time.monotonic
    backoff: tenacity.wait.wait_base | None = None

    name = "aci"

    def accepts(self, exchange: CapturedExchange) -> bool:
        """Any ``x-aci-*`` response header: the response came from an ACI gateway."""
        return is_aci_headers(exchange.headers)

    def attest(self, *, progress: Progress) -> Flow[GatewayAttestation]:
        """The gateway's identity now: a fresh nonce, never cached."""
        return gateway_attestation_flow(
            self.endpoints,
            policy=self.policy,
            trust=self.trust,
            now=self.clock,
            progress=progress,
            monotonic=self.monotonic,
        )

    def judge(self, exchange: CapturedExchange, *, now: datetime) -> Flow[Judgement]:
        ex = exchange
        evidence = AciEvidence(
            endpoint=httpx.URL(ex.url).path,
            status_code=ex.status_code,
            receipt_id=ex.headers.get("x-receipt-id") or None,
            keyset_digest_header=ex.headers.get("x-aci-keyset-digest") or None,
            sent_aci_constraint=sent_aci_constraint(ex.request_body),
        )
        early = self._early(ex, evidence, now)
        if early is not None:
            return Judgement(result=early, protocol=self.name, aci=evidence)
        assert evidence.receipt_id is not None
        fetched = yield from receipt_flow(
            self.endpoints,
            receipt_id=evidence.receipt_id,
            policy=self.policy,
            monotonic=self.monotonic,
            backoff=self.backoff,
        )
        session: bytes | None = None
        if self.policy.check_session or self.policy.accepted_providers is not None:
            sid = _session_id(fetched.body)
            if sid is not None:
                session = yield from session_flow(
                    self.endpoints, session_id=sid, monotonic=self.monotonic
                )
        gateway = yield from cached_gateway_flow(
            self.endpoints,
            keyset_digest=evidence.keyset_digest_header,
            policy=self.policy,
            trust=self.trust,
            now=self.clock,
            monotonic=self.monotonic,
        )
        evidence = dataclasses.replace(
            evidence,
            report=gateway.report,
            nonce=gateway.nonce,
            collateral_json=gateway.collateral_json,
            attested_at=gateway.attested_at,
            attestation_fetch_reason=gateway.fetch_reason,
            receipt=fetched.body,
            receipt_attempts=fetched.attempts,
            receipt_fetch_reason=fetched.reason,
            session=session,
        )
        assert ex.model is not None
        result = judge_evidence(
            evidence,
            request_body=ex.request_body,
            response_body=ex.response_body,
            chat_id=ex.chat_id,
            model=ex.model,
            started_at=ex.started_at,
            finished_at=ex.finished_at or now,
            policy=self.policy,
            trust=self.trust,
            now=self.clock(),
            gateway=gateway.verdict,
        )
        detail = "; ".join(d for d in (result.detail, gateway.detail, fetched.detail) if d)
        return Judgement(
            result=result.with_updates(detail=detail), protocol=self.name, aci=evidence
        )

    def _early(
        self, ex: CapturedExchange, evidence: AciEvidence, now: datetime
    ) -> VerificationResult | None:
        stop: tuple[Reason, str] | None = None
        refusal = ex.status_code in REFUSAL_STATUSES and evidence.receipt_id is not None
        if not ex.model:
            stop = Reason.MALFORMED_RESPONSE, "request names no model"
        elif "content-encoding" in ex.headers:
            stop = (
                Reason.MALFORMED_RESPONSE,
                (
                    f"response has content-encoding {ex.headers['content-encoding'][:40]!r}: the "
                    "receipt covers the bytes on the wire, the capture holds decoded ones"
                ),
            )
        elif not refusal and not 200 <= ex.status_code < 300:
            stop = Reason.UPSTREAM_HTTP_ERROR, f"chat answered HTTP {ex.status_code}"
        elif ex.problem is not None:
            stop = ex.problem, "capture: " + ex.problem.value
        elif not ex.complete:
            stop = Reason.STREAM_INCOMPLETE, "capture incomplete"
        if stop is not None:
            return self._result(ex, [stop[0]], {}, stop[1], now)
        if evidence.receipt_id is None:
            detail = "the response carries ACI headers but no X-Receipt-Id"
            checks = {"receipt": CheckOutcome.FAIL}
            return self._result(ex, [Reason.RECEIPT_MISSING], checks, detail, now)
        return None

    def _result(
        self,
        ex: CapturedExchange,
        reasons: list[Reason],
        checks: dict[str, CheckOutcome],
        detail: str,
        at: datetime,
    ) -> VerificationResult:
        return VerificationResult.build(
            checks=checks,
            reasons=reasons,
            required=required_checks("aci", check_session=self.policy.check_session),
            protocol="aci",
            chat_id=ex.chat_id,
            model=ex.model,
            request_sha256=sha256_hex(ex.request_body),
            response_sha256=sha256_hex(ex.response_body),
            hash_mode="bytes",
            verified_at=at,
            detail=detail,
        )
