"""Self-contained receipts that re-verify offline; :class:`ReceiptStore` keeps them.

A :class:`Receipt` holds everything one verification used, exactly as received: the request and
response bytes (or only their sha256 when ``policy.receipt_bodies`` is False), whether the response
was streamed, the chat id, model and base URL, the signature record (raw bytes), the attestation
evidence (report as received, collateral, NRAS answer, JWKS, nonce), the times, the policy, the
trust-anchor kind, the library version and the original :class:`VerificationResult`. An ACI
receipt keeps, in ``aci``, the gateway's attestation document, our nonce, the collateral, the
server's receipt and session bytes as received and the exchange's headers
(:class:`~redpill_integrations.verify.aci.bundle.AciEvidence`, ``docs/aci-wire.md`` §4); receipts
without ``aci`` (legacy, or older than ACI) load as before. ``to_json()``/``from_json()``
round-trip it exactly.

:func:`reverify` re-runs the pure core on a receipt with no network: ``at`` defaults to the original
verification time, ``policy`` to the **caller's** default policy (``VerificationPolicy()``) and
``trust`` to the **production** anchors. Nothing that decides the verdict is taken from the receipt:
its recorded policy is shown by :func:`policy_diff` and applied only when the caller passes it
explicitly (``policy=receipt.recorded_policy()``); NVIDIA's token keys must chain to the caller's
pinned NRAS CA; pass ``TrustAnchors.from_file(...)`` explicitly for an emulator receipt. The
receipt's own time is a claim of the receipt: :func:`far_from` tells a caller when ``at`` (given or
taken from the receipt) lies more than a day from now. One byte changed in the bodies, the signature
or the evidence changes the verdict with the exact reason. A body-less receipt cannot be re-checked
(the signature covers the bytes): it re-verifies ``unverifiable`` / ``CHECK_NOT_RUN``. A receipt
without a signature (the verdict was decided before one existed: ``MODEL_NOT_TEE``,
``STREAM_INCOMPLETE``, ``SIGNATURE_UNAVAILABLE``…) re-verifies to its original reasons. By default
the attestation evidence is judged at the instant it was fetched (a cached attestation may predate
the response) and the verdict assembled at the original verification time; an explicit ``at`` is
used for both.

:class:`ReceiptStore` (re-exported from :mod:`redpill_integrations.stores`) keeps receipts in
SQLite (the default, ``ReceiptStore(path)``) or PostgreSQL (``ReceiptStore.open(url)``): one
atomic, idempotent write per exchange. :meth:`ReceiptStore.default` opens ``$REDPILL_RECEIPTS``
(a path or URL) or ``~/.redpill/receipts.sqlite3``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from redpill_integrations._version import __version__
from redpill_integrations.errors import ConfigurationError, EvidenceError, ReceiptError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify.aci.bundle import AciEvidence, judge_evidence
from redpill_integrations.verify.encoding import too_deep
from redpill_integrations.verify.judgement import judge
from redpill_integrations.verify.models import AttestationEvidence, SignatureRecord

if TYPE_CHECKING:
    from redpill_integrations.stores.base import ReceiptStore

__all__ = [
    "FAR_FROM_NOW",
    "RECEIPT_FORMAT",
    "Receipt",
    "ReceiptStore",
    "far_from",
    "policy_diff",
    "reverify",
    "reverify_time",
]

RECEIPT_FORMAT = 1
#: a re-verification time further than this from now is shown as such
FAR_FROM_NOW = timedelta(days=1)


def _b64(b: bytes | None) -> str | None:
    return base64.b64encode(b).decode() if b is not None else None


def _unb64(v: Any) -> bytes | None:
    return base64.b64decode(v, validate=True) if v is not None else None


def _ts(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def _dt(v: Any) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Receipt:
    receipt_id: str
    created_at: datetime
    result: VerificationResult
    chat_id: str | None = None
    model: str | None = None
    base_url: str | None = None
    streamed: bool = False
    request_body: bytes | None = None
    response_body: bytes | None = None
    request_sha256: str | None = None
    response_sha256: str | None = None
    signature: SignatureRecord | None = None
    signature_attempts: int = 0
    attestation: AttestationEvidence | None = None
    #: why no attestation report was obtained (then ``attestation`` is None)
    attestation_fetch_reason: Reason | None = None
    exchange_started_at: datetime | None = None
    exchange_finished_at: datetime | None = None
    verified_at: datetime | None = None
    policy: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    trust_kind: str = "production"
    library_version: str = __version__
    #: the ACI protocol's evidence (None for legacy receipts and receipts older than ACI)
    aci: AciEvidence | None = None

    @property
    def protocol(self) -> str:
        """The protocol the verdict was reached under (``"aci"`` | ``"legacy"`` | …)."""
        return self.result.protocol

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECEIPT_FORMAT,
            "receipt_id": self.receipt_id,
            "created_at": _ts(self.created_at),
            "result": self.result.to_dict(),
            "chat_id": self.chat_id,
            "model": self.model,
            "base_url": self.base_url,
            "streamed": self.streamed,
            "request_body_b64": _b64(self.request_body),
            "response_body_b64": _b64(self.response_body),
            "request_sha256": self.request_sha256,
            "response_sha256": self.response_sha256,
            "signature": self.signature.to_dict() if self.signature else None,
            "signature_attempts": self.signature_attempts,
            "attestation": self.attestation.to_dict() if self.attestation else None,
            "attestation_fetch_reason": (
                self.attestation_fetch_reason.value if self.attestation_fetch_reason else None
            ),
            "exchange_started_at": _ts(self.exchange_started_at),
            "exchange_finished_at": _ts(self.exchange_finished_at),
            "verified_at": _ts(self.verified_at),
            "policy": dict(self.policy),
            "trust_kind": self.trust_kind,
            "library_version": self.library_version,
            "aci": self.aci.to_dict() if self.aci else None,
        }

    def recorded_policy(self) -> VerificationPolicy:
        """The policy the receipt says it was verified under (a claim of the receipt: apply it
        only on purpose, ``reverify(receipt, policy=receipt.recorded_policy())``)."""
        try:
            return VerificationPolicy.from_dict(self.policy)
        except (TypeError, ValueError, ConfigurationError) as exc:
            raise ReceiptError("receipt policy is unreadable") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        try:
            if data.get("format") != RECEIPT_FORMAT:
                raise ReceiptError(f"unsupported receipt format {data.get('format')!r}")
            sig, att = data.get("signature"), data.get("attestation")
            fetch_reason = data.get("attestation_fetch_reason")
            created = _dt(data["created_at"])
            if created is None:
                raise ReceiptError("receipt lacks created_at")
            return cls(
                receipt_id=str(data["receipt_id"]),
                created_at=created,
                result=VerificationResult.from_dict(data["result"]),
                chat_id=data.get("chat_id"),
                model=data.get("model"),
                base_url=data.get("base_url"),
                streamed=bool(data.get("streamed", False)),
                request_body=_unb64(data.get("request_body_b64")),
                response_body=_unb64(data.get("response_body_b64")),
                request_sha256=data.get("request_sha256"),
                response_sha256=data.get("response_sha256"),
                signature=SignatureRecord.from_dict(sig) if sig else None,
                signature_attempts=int(data.get("signature_attempts", 0)),
                attestation=AttestationEvidence.from_dict(att) if att else None,
                attestation_fetch_reason=Reason(fetch_reason) if fetch_reason else None,
                exchange_started_at=_dt(data.get("exchange_started_at")),
                exchange_finished_at=_dt(data.get("exchange_finished_at")),
                verified_at=_dt(data.get("verified_at")),
                policy=dict(data.get("policy") or {}),
                trust_kind=str(data.get("trust_kind", "production")),
                library_version=str(data.get("library_version", "")),
                aci=AciEvidence.from_dict(data["aci"]) if data.get("aci") else None,
            )
        except ReceiptError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error, EvidenceError) as exc:
            raise ReceiptError(f"unreadable receipt: {type(exc).__name__}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        if too_deep(text):
            raise ReceiptError("receipt nests too deeply to be one")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ReceiptError("receipt is not JSON") from exc
        if not isinstance(data, dict):
            raise ReceiptError("receipt is not a JSON object")
        return cls.from_dict(data)


def reverify_time(receipt: Receipt, at: datetime | None = None) -> datetime:
    """The instant :func:`reverify` assembles its verdict at: ``at``, else the receipt's own."""
    return at or receipt.verified_at or receipt.result.verified_at or receipt.created_at


def far_from(at: datetime, now: datetime) -> timedelta | None:
    """``at - now`` when it exceeds :data:`FAR_FROM_NOW` either way, else None."""
    delta = at - now
    return delta if abs(delta) > FAR_FROM_NOW else None


def policy_diff(receipt: Receipt, policy: VerificationPolicy) -> dict[str, tuple[Any, Any]]:
    """``{field: (recorded, applied)}`` for every field where the receipt's recorded policy differs
    from ``policy`` (shown to the user, never applied); ``{"<unreadable>": (raw, None)}`` when the
    recorded policy cannot be read."""
    applied = policy.to_dict()
    try:
        recorded = receipt.recorded_policy().to_dict()
    except ReceiptError:
        return {"<unreadable>": (dict(receipt.policy), None)}
    return {k: (recorded.get(k), v) for k, v in applied.items() if recorded.get(k) != v}


def reverify(
    receipt: Receipt,
    *,
    at: datetime | None = None,
    trust: TrustAnchors | None = None,
    policy: VerificationPolicy | None = None,
) -> VerificationResult:
    """Re-run the pure core on ``receipt`` offline under the caller's ``policy`` and ``trust``
    (defaults: ``VerificationPolicy()`` and production anchors; see the module docstring)."""
    when = reverify_time(receipt, at)
    # by default the attestation is replayed at the instant it was judged (it may be cached)
    attestation_at = at or (receipt.attestation.fetched_at if receipt.attestation else None)
    pol = policy or VerificationPolicy()
    anchors = trust or TrustAnchors.production()
    common: dict[str, Any] = {
        "chat_id": receipt.chat_id,
        "model": receipt.model,
        "verified_at": when,
        "receipt_id": receipt.result.receipt_id,
    }
    if receipt.aci is not None:
        return _reverify_aci(receipt, receipt.aci, at=at, when=when, policy=pol, trust=anchors)
    if receipt.signature is None:
        original = receipt.result
        return VerificationResult.build(
            checks={},
            reasons=original.reasons or (Reason.CHECK_NOT_RUN,),
            request_sha256=receipt.request_sha256,
            response_sha256=receipt.response_sha256,
            detail="receipt holds no signature: verdict decided before one existed",
            **common,
        )
    if receipt.request_body is None or receipt.response_body is None:
        return VerificationResult.unverifiable(
            Reason.CHECK_NOT_RUN,
            request_sha256=receipt.request_sha256,
            response_sha256=receipt.response_sha256,
            detail="receipt keeps only body hashes; the signature cannot be re-checked",
            **common,
        )
    return judge(
        receipt.signature,
        request_body=receipt.request_body,
        response_body=receipt.response_body,
        streamed=receipt.streamed,
        attestation=receipt.attestation,
        attestation_fetch_reason=receipt.attestation_fetch_reason,
        chat_id=receipt.chat_id,
        model=receipt.model,
        policy=pol,
        trust=anchors,
        at=when,
        receipt_id=receipt.result.receipt_id,
        attestation_at=attestation_at,
    )


def _reverify_aci(
    receipt: Receipt,
    aci: AciEvidence,
    *,
    at: datetime | None,
    when: datetime,
    policy: VerificationPolicy,
    trust: TrustAnchors,
) -> VerificationResult:
    """An ACI receipt, offline: the gateway identity judged at the instant it was attested
    (or ``at``), the rest at ``when``. A verdict reached before any evidence was fetched (no
    report and no reason it is missing: an early stop such as ``RECEIPT_MISSING``) keeps its
    original reasons."""
    common: dict[str, Any] = {
        "chat_id": receipt.chat_id,
        "model": receipt.model,
        "verified_at": when,
        "receipt_id": receipt.result.receipt_id,
        "request_sha256": receipt.request_sha256,
        "response_sha256": receipt.response_sha256,
        "protocol": "aci",
    }
    if aci.report is None and aci.attestation_fetch_reason is None:
        original = receipt.result
        return VerificationResult.build(
            checks=original.checks,
            reasons=original.reasons or (Reason.CHECK_NOT_RUN,),
            required=(),
            detail="verdict decided before any ACI evidence was fetched",
            **common,
        )
    if receipt.request_body is None or receipt.response_body is None:
        return VerificationResult.unverifiable(
            Reason.CHECK_NOT_RUN,
            detail="receipt keeps only body hashes; the ACI receipt cannot be re-checked",
            **common,
        )
    result = judge_evidence(
        aci,
        request_body=receipt.request_body,
        response_body=receipt.response_body,
        chat_id=receipt.chat_id,
        model=receipt.model,
        started_at=receipt.exchange_started_at or when,
        finished_at=receipt.exchange_finished_at or when,
        policy=policy,
        trust=trust,
        now=when,
        attested_at=at or aci.attested_at,
    )
    return result.with_updates(receipt_id=receipt.result.receipt_id)


def __getattr__(name: str) -> Any:
    """``ReceiptStore`` stays importable from here; it lives in :mod:`redpill_integrations.stores`
    (loaded on first use: the stores import this module, so a module-level import would be a
    cycle)."""
    if name == "ReceiptStore":
        from redpill_integrations.stores.base import ReceiptStore

        return ReceiptStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
