"""The per-response receipt check (docs/protocol-aci.md §5).

``signer_attested``  ``key_id`` is a receipt key of the attested keyset (``SIGNER_NOT_ATTESTED``)
                     and the receipt names the attested keyset digest (``KEYSET_DIGEST_MISMATCH``)
``signature``        Ed25519 over JCS(receipt without ``signature``) (``SIGNATURE_INVALID``)
``receipt``          event log shape (``RECEIPT_EVENT_LOG_INVALID``); receipt id, chat id,
                     endpoint and served_at window (``RECEIPT_MISMATCH``); model
                     (``MODEL_MISMATCH``)
``request_hash``     ``request.received.body_hash`` = sha256 of the bytes we sent
``response_hash``    ``response.returned.body_hash`` = sha256 of the bytes we received
``upstream``         the gateway verified the upstream as the policy requires
                     (``UPSTREAM_NOT_VERIFIED``); a refusal is ``UPSTREAM_REFUSED``
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason, UpstreamSummary
from redpill_integrations.verify.aci.exchange import AciExchange
from redpill_integrations.verify.aci.jcs import NotCanonical, jcs
from redpill_integrations.verify.aci.models import AciReceipt, AciSession, WorkloadKeyset
from redpill_integrations.verify.checklog import CheckLog
from redpill_integrations.verify.tdx import epoch_seconds

__all__ = ["check_receipt", "upstream_event", "verify_receipt_signature"]

_SESSION_ID = re.compile(r"[0-9a-f]{64}")
_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def verify_receipt_signature(receipt: AciReceipt, keyset: WorkloadKeyset) -> str | None:
    """None when the receipt's signature verifies under its keyset key; otherwise the problem."""
    key = keyset.receipt_key(receipt.key_id)
    if key is None:
        return "the receipt's key_id is not a receipt key of the keyset"
    if key.algo != "ed25519":
        return f"receipt key algo {key.algo[:32]!r} is not supported"
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))
        public.verify(receipt.signature, jcs(receipt.signed_document()))
    except NotCanonical as exc:
        return f"receipt cannot be canonicalized: {exc}"
    except (InvalidSignature, ValueError):
        return "Ed25519 signature does not verify"
    return None


def check_receipt(
    receipt: AciReceipt,
    *,
    keyset: WorkloadKeyset,
    keyset_digest: str | None,
    serving: str,
    exchange: AciExchange,
    session: AciSession | None,
    policy: VerificationPolicy,
    log: CheckLog,
) -> UpstreamSummary | None:
    """Run the checks of docs/protocol-aci.md §5 from ``signer_attested`` on into ``log``;
    returns the upstream facts the receipt records."""
    if keyset.receipt_key(receipt.key_id) is None:
        log.fail("signer_attested", Reason.SIGNER_NOT_ATTESTED, "key_id is not in the keyset")
        log.skip("signature")
    else:
        if keyset_digest is None or receipt.workload_keyset_digest != keyset_digest:
            log.fail(
                "signer_attested",
                Reason.KEYSET_DIGEST_MISMATCH,
                "the receipt names another keyset than the attested one",
            )
        log.ok("signer_attested")
        problem = verify_receipt_signature(receipt, keyset)
        if problem is None:
            log.ok("signature")
        else:
            log.fail("signature", Reason.SIGNATURE_INVALID, problem)
    _check_binding(receipt, exchange, policy, log)
    _check_hashes(receipt, exchange, log)
    return _check_upstream(receipt, serving, exchange, session, policy, log)


def _single(receipt: AciReceipt, kind: str) -> Mapping[str, Any] | None:
    events = receipt.events_of(kind)
    if len(events) != 1 or not _HASH.fullmatch(str(events[0].get("body_hash"))):
        return None
    return events[0]


def _check_binding(
    receipt: AciReceipt, exchange: AciExchange, policy: VerificationPolicy, log: CheckLog
) -> None:
    first = receipt.events[0].get("type") if receipt.events else None
    if (
        first != "request.received"
        or _single(receipt, "request.received") is None
        or _single(receipt, "response.returned") is None
    ):
        log.fail(
            "receipt",
            Reason.RECEIPT_EVENT_LOG_INVALID,
            "event log must start with request.received and hold one request.received and one "
            "response.returned with a sha256 body_hash",
        )
    mismatch = Reason.RECEIPT_MISMATCH
    if receipt.receipt_id != exchange.receipt_id:
        log.fail("receipt", mismatch, "receipt_id is not the X-Receipt-Id of this response")
    if exchange.chat_id is not None and receipt.chat_id != exchange.chat_id:
        log.fail("receipt", mismatch, "the receipt names another chat id")
    if receipt.endpoint != exchange.endpoint:
        log.fail("receipt", mismatch, f"the receipt names endpoint {receipt.endpoint[:64]!r}")
    start = epoch_seconds(exchange.started_at) - policy.served_at_skew
    end = epoch_seconds(exchange.finished_at) + policy.served_at_skew
    if not start <= receipt.served_at <= end:
        log.fail("receipt", mismatch, "served_at is outside the window of our request")
    if exchange.model is not None and receipt.model != exchange.model:
        log.fail("receipt", Reason.MODEL_MISMATCH, "the receipt names another model")
    log.ok("receipt")


def _check_hashes(receipt: AciReceipt, exchange: AciExchange, log: CheckLog) -> None:
    pairs = (
        ("request_hash", "request.received", exchange.request_body, Reason.REQUEST_HASH_MISMATCH),
        (
            "response_hash",
            "response.returned",
            exchange.response_body,
            Reason.RESPONSE_HASH_MISMATCH,
        ),
    )
    for check, kind, body, reason in pairs:
        event = _single(receipt, kind)
        if event is None:
            log.skip(check, detail=f"no single {kind} event")
        elif event["body_hash"] == "sha256:" + hashlib.sha256(body).hexdigest():
            log.ok(check)
        else:
            log.fail(check, reason, f"{kind}.body_hash is not sha256 of our exact bytes")


def upstream_event(receipt: AciReceipt) -> Mapping[str, Any] | None:
    """The ``upstream.verified`` event that counts: the last verified one, else the last one."""
    events = receipt.events_of("upstream.verified")
    verified = [e for e in events if e.get("result") == "verified"]
    return (verified or events or [None])[-1]


def _check_upstream(
    receipt: AciReceipt,
    serving: str,
    exchange: AciExchange,
    session: AciSession | None,
    policy: VerificationPolicy,
    log: CheckLog,
) -> UpstreamSummary | None:
    event = upstream_event(receipt)
    summary = _summary(event, session)
    if exchange.refused:
        log.skip("upstream", Reason.UPSTREAM_REFUSED, "the gateway refused to forward the request")
        return summary
    if event is None:
        if serving == "direct":
            log.ok("upstream")  # a direct-serving gateway has no upstream to verify
        else:
            log.fail("upstream", Reason.RECEIPT_EVENT_LOG_INVALID, "no upstream.verified event")
        return summary
    verified = event.get("result") == "verified" and _SESSION_ID.fullmatch(
        str(event.get("session_id"))
    )
    if policy.require_verified_upstream:
        if not verified:
            log.fail("upstream", Reason.UPSTREAM_NOT_VERIFIED, "the upstream was not verified")
        elif event.get("required") is not True and exchange.sent_aci_constraint:
            log.fail(
                "upstream",
                Reason.UPSTREAM_NOT_VERIFIED,
                "we required verified serving but the receipt says required: false",
            )
    if policy.accepted_providers is not None:
        if session is None:
            log.skip("upstream", Reason.SESSION_UNAVAILABLE, "accepted_providers needs the session")
            return summary
        if session.upstream_name not in policy.accepted_providers:
            log.fail(
                "upstream",
                Reason.UPSTREAM_NOT_VERIFIED,
                f"provider {session.upstream_name[:64]!r} is not accepted",
            )
    log.ok("upstream")
    return summary


def _summary(event: Mapping[str, Any] | None, session: AciSession | None) -> UpstreamSummary | None:
    if event is None:
        return None

    def text(key: str) -> str | None:
        value = event.get(key)
        return value[:256] if isinstance(value, str) else None

    required = event.get("required")
    return UpstreamSummary(
        provider=session.upstream_name if session else text("upstream_name"),
        model_id=text("model_id"),
        result=text("result"),
        required=required if isinstance(required, bool) else None,
        session_id=text("session_id"),
        claims=dict(session.claims) if session else {},
    )
