"""The legacy protocol: a signature lookup by chat id, then the signer's attestation report.

The protocol every Redpill TEE model speaks today: ``GET {base}/signature/{chat_id}`` for the
signed hashes of the exchange, ``GET {base}/attestation/report`` for the signer's TEE evidence. Its
judgement of one exchange, each step able to end it with an exact reason, never an exception:

1. early checks, nothing fetched: a request without a model → ``MALFORMED_RESPONSE``; a model
   outside ``tee_model_prefixes`` → ``MODEL_NOT_TEE``; a non-200 chat answer →
   ``UPSTREAM_HTTP_ERROR``; a capture problem (``STREAM_INCOMPLETE``, ``RESPONSE_TOO_LARGE``,
   ``MALFORMED_RESPONSE``); no response id → ``MALFORMED_RESPONSE``;
2. the signature, retried (:mod:`.fetch_signature`);
3. ``verify.check_signature`` against our own hashes of the captured bytes; a failed signature
   check is final (never retried, nothing else fetched);
4. the signer's attestation, shared and cached (:mod:`.fetch_attestation`), judged by
   ``verify.judge_attestation``;
5. ``verify.assemble_result``.

The receipt (shared step, :mod:`.verify_flow`) keeps the signature record and the attestation
evidence, so that ``receipts.reverify`` can re-run steps 3-5 offline with ``verify.judge``
(:mod:`redpill_integrations.verify.judgement`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime

import tenacity

from redpill_integrations.policy import TEE_MODEL_PREFIXES, TrustAnchors, VerificationPolicy
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify import assemble_result, check_signature
from redpill_integrations.verify.encoding import sha256_hex
from redpill_integrations.wire.capture import CapturedExchange
from redpill_integrations.wire.fetch_attestation import (
    AttestationOutcome,
    Progress,
    attestation_flow,
    cached_attestation_flow,
)
from redpill_integrations.wire.fetch_signature import SignatureFetch, signature_flow
from redpill_integrations.wire.flow import Flow
from redpill_integrations.wire.http import Endpoints
from redpill_integrations.wire.protocols import Judgement

__all__ = ["LegacyProtocol"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LegacyProtocol:
    endpoints: Endpoints
    policy: VerificationPolicy
    trust: TrustAnchors
    clock: Callable[[], datetime]
    monotonic: Callable[[], float] = time.monotonic
    tee_model_prefixes: tuple[str, ...] = TEE_MODEL_PREFIXES
    signature_ttl: float = 1200.0
    backoff: tenacity.wait.wait_base | None = None

    name = "legacy"

    def accepts(self, exchange: CapturedExchange) -> bool:
        """The fallback: every exchange no other protocol claims."""
        return True

    def is_tee_model(self, model: str | None) -> bool:
        return bool(model) and str(model).startswith(self.tee_model_prefixes)

    def attest(
        self, model: str, *, signer: str | None, progress: Progress
    ) -> Flow[AttestationOutcome]:
        """A fresh (uncached) attestation of ``model`` with its evidence."""
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

    def judge(self, exchange: CapturedExchange, *, now: datetime) -> Flow[Judgement]:
        early = self._early_reason(exchange)
        if early is not None:
            reason, detail = early
            return self._stopped(exchange, reason, detail, now)
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
            stopped = self._stopped(exchange, reason, fetched.detail, self.clock())
            return dataclasses.replace(stopped, signature_attempts=fetched.attempts)
        sig = check_signature(
            fetched.record,
            request_body=exchange.request_body,
            response_body=exchange.response_body,
            streamed=exchange.streamed,
            policy=self.policy,
        )
        outcome: AttestationOutcome | None = None
        if sig.passed:
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
        result = assemble_result(
            sig,
            outcome.verdict if outcome else None,
            chat_id=exchange.chat_id,
            model=exchange.model,
            policy=self.policy,
            now=self.clock(),
        )
        detail = "; ".join(d for d in (result.detail, fetched.detail) if d)
        return Judgement(
            result=result.with_updates(detail=detail),
            protocol=self.name,
            signature=fetched.record,
            signature_attempts=fetched.attempts,
            attestation=outcome.evidence if outcome else None,
            attestation_fetch_reason=outcome.fetch_reason if outcome else None,
        )

    def _early_reason(self, ex: CapturedExchange) -> tuple[Reason, str] | None:
        if not ex.model:
            return Reason.MALFORMED_RESPONSE, "request names no model"
        if not self.is_tee_model(ex.model):
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

    def _stopped(
        self, ex: CapturedExchange, reason: Reason, detail: str, at: datetime
    ) -> Judgement:
        result = VerificationResult.unverifiable(
            reason,
            chat_id=ex.chat_id,
            model=ex.model,
            request_sha256=sha256_hex(ex.request_body),
            response_sha256=sha256_hex(ex.response_body),
            verified_at=at,
            detail=detail,
        )
        return Judgement(result=result, protocol=self.name)
