"""The verification of one captured exchange, written once as a sans-I/O flow (see :mod:`.flow`).

The steps every protocol shares live here; the protocol-specific middle sits behind the seam of
:mod:`.protocols`:

1. no exchange → ``MALFORMED_RESPONSE`` (nothing to judge, no protocol asked);
2. :func:`.protocols.choose` picks the protocol, whose ``judge`` flow returns a
   :class:`~.protocols.Judgement` (its own early checks, fetches and the pure judgement);
3. :func:`build_receipt` makes the one :class:`~redpill_integrations.receipts.Receipt`, and
   :func:`store_receipt` writes it when a store is configured (a ``Blocking`` effect: a thread in
   async code).

The crash guard (a bug of ours → ``CHECK_NOT_RUN``) is ``RedpillVerifier.verify_exchange``'s; it
builds and stores its receipt with the same two functions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from redpill_integrations.errors import RedpillError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import Receipt, ReceiptStore
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify.encoding import sha256_hex
from redpill_integrations.wire.capture import CapturedExchange
from redpill_integrations.wire.flow import Blocking, Flow
from redpill_integrations.wire.protocols import Judgement, VerificationProtocol, choose

__all__ = ["VerifyFlow", "build_receipt", "store_receipt"]

logger = logging.getLogger("redpill_integrations.wire")


def build_receipt(
    *,
    receipt_id: str,
    created_at: datetime,
    judgement: Judgement,
    exchange: CapturedExchange | None,
    base_url: str,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    stored: bool,
) -> Receipt:
    """The one receipt of an exchange. Its verdict names ``receipt_id`` only when ``stored``
    (a store is configured); bodies are kept when the policy says so, their hashes always."""
    result = judgement.result.with_updates(receipt_id=receipt_id if stored else None)
    ex = exchange
    bodies = policy.receipt_bodies and ex is not None
    return Receipt(
        receipt_id=receipt_id,
        created_at=created_at,
        result=result,
        chat_id=result.chat_id,
        model=result.model,
        base_url=base_url,
        streamed=ex.streamed if ex else False,
        request_body=ex.request_body if bodies and ex else None,
        response_body=ex.response_body if bodies and ex else None,
        request_sha256=sha256_hex(ex.request_body) if ex else None,
        response_sha256=sha256_hex(ex.response_body) if ex else None,
        signature=judgement.signature,
        signature_attempts=judgement.signature_attempts,
        attestation=judgement.attestation,
        attestation_fetch_reason=judgement.attestation_fetch_reason,
        aci=judgement.aci,
        exchange_started_at=ex.started_at if ex else None,
        exchange_finished_at=ex.finished_at if ex else None,
        verified_at=result.verified_at,
        policy=policy.to_dict(),
        trust_kind=trust.kind,
    )


def store_receipt(store: ReceiptStore | None, receipt: Receipt) -> Receipt:
    """Write ``receipt``; what the caller gets back. A receipt that could not be written (the
    store's own bounded retries exhausted) is logged and returned with ``result.receipt_id``
    cleared and ``result.receipt_error`` saying why: never an exception (the user's response must
    not be lost to a full disk or a database that went away), never a silent drop."""
    if store is None:
        return receipt
    try:
        store.put(receipt)
    except Exception as exc:
        return _not_stored(receipt, exc)
    return receipt


async def astore_receipt(store: ReceiptStore | None, receipt: Receipt) -> Receipt:
    """:func:`store_receipt` for async code, in a worker thread: the event loop never blocks.

    Not through the store's per-loop async pool (``aput``): a pool opened on a loop outlives it,
    so an application that calls ``asyncio.run`` repeatedly would leave one pool (and its
    connections) behind per run. The sync pool is shared by every loop and thread."""
    return await asyncio.to_thread(store_receipt, store, receipt)


def _not_stored(receipt: Receipt, exc: Exception) -> Receipt:
    # Our own errors carry safe messages (the stores strip passwords); a foreign one is named by
    # its type only, as its text may hold a connection string.
    why = str(exc) if isinstance(exc, RedpillError) else type(exc).__name__
    logger.error("receipt %s could not be stored: %s", receipt.receipt_id, why)
    result = receipt.result.with_updates(receipt_id=None, receipt_error=f"not stored: {why}")
    return dataclasses.replace(receipt, result=result)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyFlow:
    """One exchange in, its one receipt out (see the module docstring)."""

    protocols: Sequence[VerificationProtocol]
    base_url: str
    policy: VerificationPolicy
    trust: TrustAnchors
    clock: Callable[[], datetime]
    store: ReceiptStore | None = None

    def verify(self, exchange: CapturedExchange | None) -> Flow[Receipt]:
        receipt_id = uuid.uuid4().hex
        now = self.clock()
        if exchange is None:
            result = VerificationResult.unverifiable(
                Reason.MALFORMED_RESPONSE, verified_at=now, detail="no captured exchange"
            )
            judgement = Judgement(result=result, protocol="none")
        else:
            protocol = choose(self.protocols, exchange)
            judgement = yield from protocol.judge(exchange, now=now)
        return (yield from self.keep(receipt_id, judgement, exchange))

    def keep(
        self, receipt_id: str, judgement: Judgement, exchange: CapturedExchange | None
    ) -> Flow[Receipt]:
        receipt = self.receipt(receipt_id, judgement, exchange)
        if self.store is None:
            return receipt
        store = self.store
        kept: Receipt = yield Blocking(lambda: store_receipt(store, receipt))
        return kept

    def receipt(
        self, receipt_id: str, judgement: Judgement, exchange: CapturedExchange | None
    ) -> Receipt:
        return build_receipt(
            receipt_id=receipt_id,
            created_at=self.clock(),
            judgement=judgement,
            exchange=exchange,
            base_url=self.base_url,
            policy=self.policy,
            trust=self.trust,
            stored=self.store is not None,
        )
