"""The verification of one captured exchange, written once as a sans-I/O flow (see :mod:`.flow`).

Order (each step may end the verification with an exact reason, never an exception):

1. no exchange → ``MALFORMED_RESPONSE``; a model outside ``tee_model_prefixes`` → ``MODEL_NOT_TEE``
   (nothing fetched); a non-200 chat answer → ``UPSTREAM_HTTP_ERROR``; a capture problem
   (``STREAM_INCOMPLETE``, ``RESPONSE_TOO_LARGE``, ``MALFORMED_RESPONSE``); no response id →
   ``MALFORMED_RESPONSE``;
2. the signature, retried (:mod:`.fetch_signature`);
3. ``verify.check_signature`` against our own hashes of the captured bytes; a failed signature check
   is final (never retried, nothing else fetched);
4. the signer's attestation, shared and cached (:mod:`.fetch_attestation`);
5. ``verify.assemble_result``; one :class:`~redpill_integrations.receipts.Receipt`, written to the
   store when one is configured (a ``Blocking`` effect: a thread in async code).

:func:`judge` is the offline half (steps 3-5 without fetching) that :func:`receipts.reverify` runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import tenacity

from redpill_integrations.modes import TEE_MODEL_PREFIXES
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import Receipt, ReceiptStore
from redpill_integrations.results import CheckOutcome, Reason, VerificationResult
from redpill_integrations.verify import (
    AttestationEvidence,
    AttestationVerdict,
    SignatureCheck,
    SignatureRecord,
    assemble_result,
    check_signature,
)
from redpill_integrations.wire.capture import CapturedExchange
from redpill_integrations.wire.fetch_attestation import (
    AttestationOutcome,
    Progress,
    attestation_flow,
    cached_attestation_flow,
    failed_fetch_verdict,
    run_core,
)
from redpill_integrations.wire.fetch_signature import SignatureFetch, signature_flow
from redpill_integrations.wire.flow import Blocking, Flow
from redpill_integrations.wire.http import Endpoints

__all__ = ["VerifyPlan", "judge"]

logger = logging.getLogger("redpill_integrations.wire")


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def signature_check(
    record: SignatureRecord,
    *,
    request_body: bytes,
    response_body: bytes,
    streamed: bool,
    policy: VerificationPolicy,
) -> SignatureCheck:
    try:
        return check_signature(
            record,
            request_body=request_body,
            response_body=response_body,
            streamed=streamed,
            policy=policy,
        )
    except Exception:  # a core bug must not lose the user's response: fail closed
        logger.exception("signature check crashed; verdict is unverifiable")
        return SignatureCheck(
            checks={},
            reasons=(Reason.CHECK_NOT_RUN,),
            request_sha256=_sha(request_body),
            response_sha256=_sha(response_body),
            detail="signature check crashed",
        )


def signature_passed(sig: SignatureCheck) -> bool:
    return (
        sig.signer is not None
        and not sig.reasons
        and bool(sig.checks)
        and all(o is CheckOutcome.PASS for o in sig.checks.values())
    )


def finish(
    sig: SignatureCheck,
    verdict: AttestationVerdict | None,
    *,
    chat_id: str | None,
    model: str | None,
    policy: VerificationPolicy,
    at: datetime,
    receipt_id: str | None,
) -> VerificationResult:
    try:
        return assemble_result(
            sig, verdict, chat_id=chat_id, model=model, policy=policy, now=at, receipt_id=receipt_id
        )
    except Exception:
        logger.exception("assembling the verdict crashed; verdict is unverifiable")
        return VerificationResult.unverifiable(
            Reason.CHECK_NOT_RUN,
            chat_id=chat_id,
            model=model,
            verified_at=at,
            receipt_id=receipt_id,
            detail="assembling the verdict crashed",
        )


def judge(
    record: SignatureRecord,
    *,
    request_body: bytes,
    response_body: bytes,
    streamed: bool,
    attestation: AttestationEvidence | None,
    attestation_fetch_reason: Reason | None,
    chat_id: str | None,
    model: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    at: datetime,
    receipt_id: str | None,
    attestation_at: datetime | None = None,
) -> VerificationResult:
    """Steps 3-5 on stored evidence, with no network (what ``reverify`` runs).

    The attestation is judged at ``attestation_at`` (default ``at``): replaying a receipt uses the
    instant the evidence was fetched and judged, the assembly the instant of the verdict.
    """
    sig = signature_check(
        record,
        request_body=request_body,
        response_body=response_body,
        streamed=streamed,
        policy=policy,
    )
    verdict: AttestationVerdict | None = None
    if signature_passed(sig):
        if attestation is not None:
            verdict = run_core(attestation, sig.signer, policy, trust, attestation_at or at)
        elif attestation_fetch_reason is not None:
            verdict = failed_fetch_verdict(attestation_fetch_reason, "no attestation report")
    return finish(
        sig, verdict, chat_id=chat_id, model=model, policy=policy, at=at, receipt_id=receipt_id
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyPlan:
    endpoints: Endpoints
    policy: VerificationPolicy
    trust: TrustAnchors
    clock: Callable[[], datetime]
    monotonic: Callable[[], float] = time.monotonic
    tee_model_prefixes: tuple[str, ...] = TEE_MODEL_PREFIXES
    signature_ttl: float = 1200.0
    store: ReceiptStore | None = None
    backoff: tenacity.wait.wait_base | None = None

    def attest(
        self, model: str, *, signer: str | None, progress: Progress
    ) -> Flow[AttestationOutcome]:
        return attestation_flow(
            self.endpoints,
            model=model,
            signer=signer,
            policy=self.policy,
            trust=self.trust,
            now=self.clock,
            progress=progress,
            monotonic=self.monotonic,
        )

    def verify(self, exchange: CapturedExchange | None) -> Flow[Receipt]:
        receipt_id = uuid.uuid4().hex
        now = self.clock()
        if exchange is None:
            result = VerificationResult.unverifiable(
                Reason.MALFORMED_RESPONSE, verified_at=now, detail="no captured exchange"
            )
            return (yield from self._keep(receipt_id, result, None))
        early = self._early_reason(exchange)
        if early is not None:
            reason, detail = early
            result = self._unverifiable(exchange, reason, detail, now)
            return (yield from self._keep(receipt_id, result, exchange))
        assert exchange.chat_id is not None and exchange.model is not None
        age = (now - exchange.finished_at).total_seconds() if exchange.finished_at else None
        fetched: SignatureFetch = yield from signature_flow(
            self.endpoints,
            chat_id=exchange.chat_id,
            model=exchange.model,
            policy=self.policy,
            monotonic=self.monotonic,
            finished_age=age,
            signature_ttl=self.signature_ttl,
            backoff=self.backoff,
        )
        if fetched.record is None:
            reason = fetched.reason or Reason.SIGNATURE_UNAVAILABLE
            result = self._unverifiable(exchange, reason, fetched.detail, self.clock())
            return (yield from self._keep(receipt_id, result, exchange, fetched=fetched))
        sig = signature_check(
            fetched.record,
            request_body=exchange.request_body,
            response_body=exchange.response_body,
            streamed=exchange.streamed,
            policy=self.policy,
        )
        outcome: AttestationOutcome | None = None
        if signature_passed(sig):
            assert sig.signer is not None
            outcome = yield from cached_attestation_flow(
                self.endpoints,
                model=exchange.model,
                signer=sig.signer,
                policy=self.policy,
                trust=self.trust,
                now=self.clock,
                monotonic=self.monotonic,
            )
        at = self.clock()
        result = finish(
            sig,
            outcome.verdict if outcome else None,
            chat_id=exchange.chat_id,
            model=exchange.model,
            policy=self.policy,
            at=at,
            receipt_id=receipt_id,
        )
        detail = "; ".join(d for d in (result.detail, fetched.detail) if d)
        result = result.with_updates(detail=detail)
        return (
            yield from self._keep(receipt_id, result, exchange, fetched=fetched, outcome=outcome)
        )

    def _early_reason(self, ex: CapturedExchange) -> tuple[Reason, str] | None:
        if not ex.model:
            return Reason.MALFORMED_RESPONSE, "request names no model"
        if not ex.model.startswith(self.tee_model_prefixes):
            return Reason.MODEL_NOT_TEE, f"model {ex.model!r} is not served from a TEE"
        if ex.status_code != 200:
            return Reason.UPSTREAM_HTTP_ERROR, f"chat answered HTTP {ex.status_code}"
        if ex.problem is not None:
            return ex.problem, "capture: " + ex.problem.value
        if not ex.complete:
            return Reason.STREAM_INCOMPLETE, "capture incomplete"
        if not ex.chat_id:
            return Reason.MALFORMED_RESPONSE, "response carries no id"
        return None

    def _unverifiable(
        self, ex: CapturedExchange, reason: Reason, detail: str, at: datetime
    ) -> VerificationResult:
        return VerificationResult.unverifiable(
            reason,
            chat_id=ex.chat_id,
            model=ex.model,
            request_sha256=_sha(ex.request_body),
            response_sha256=_sha(ex.response_body),
            verified_at=at,
            detail=detail,
        )

    def _keep(
        self,
        receipt_id: str,
        result: VerificationResult,
        ex: CapturedExchange | None,
        *,
        fetched: SignatureFetch | None = None,
        outcome: AttestationOutcome | None = None,
    ) -> Flow[Receipt]:
        stored = self.store is not None
        result = result.with_updates(receipt_id=receipt_id if stored else None)
        bodies = self.policy.receipt_bodies and ex is not None
        receipt = Receipt(
            receipt_id=receipt_id,
            created_at=self.clock(),
            result=result,
            chat_id=result.chat_id,
            model=result.model,
            base_url=self.endpoints.base_url,
            streamed=ex.streamed if ex else False,
            request_body=ex.request_body if bodies and ex else None,
            response_body=ex.response_body if bodies and ex else None,
            request_sha256=_sha(ex.request_body) if ex else None,
            response_sha256=_sha(ex.response_body) if ex else None,
            signature=fetched.record if fetched else None,
            signature_attempts=fetched.attempts if fetched else 0,
            attestation=outcome.evidence if outcome else None,
            attestation_fetch_reason=outcome.fetch_reason if outcome else None,
            exchange_started_at=ex.started_at if ex else None,
            exchange_finished_at=ex.finished_at if ex else None,
            verified_at=result.verified_at,
            policy=self.policy.to_dict(),
            trust_kind=self.trust.kind,
        )
        if self.store is not None:
            store = self.store

            def put() -> Exception | None:
                try:
                    store.put(receipt)
                except Exception as exc:
                    return exc
                return None

            error = yield Blocking(put)
            if error is not None:
                logger.error("receipt %s could not be stored: %s", receipt_id, error)
                result = result.with_updates(receipt_id=None)
                receipt = dataclasses.replace(receipt, result=result)
        return receipt
