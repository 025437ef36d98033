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
    │                               (defined with the adapters, which own that decision:
    │                               ``redpill_integrations._adapter.unreadable``)
    ├── EvidenceError               evidence could not be parsed into our models
    │   ├── MalformedEvidence       truncated hex, wrong types, wrong lengths, bad JSON, ...
    │   ├── DuplicateJSONKey
    │   └── UnsupportedProtocol     a report shape we do not verify (chutes, tinfoil, unknown)
    ├── ReceiptError                a receipt that cannot be read, stored or re-verified
    └── VerificationFailed          strict mode: the verdict was not "verified"

Each error with a matching reason code (SPEC §3) exposes it as ``reason`` so that callers that turn
an error into a verdict never have to guess. Foreign exceptions are re-raised as ours with ``from``.
Messages never contain the API key. This module imports nothing outside the package's own
``results``, so the pure core (``verify/``, ``receipts``, the emulator) can use it freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redpill_integrations.results import Reason

if TYPE_CHECKING:
    from redpill_integrations.results import VerificationResult

__all__ = [
    "ConfigurationError",
    "DuplicateJSONKey",
    "EvidenceError",
    "MalformedEvidence",
    "RateLimited",
    "ReceiptError",
    "RedpillError",
    "ResponseTooLarge",
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


class EvidenceError(RedpillError):
    """Evidence that could not be parsed into the package's models."""

    reason: Reason | None = Reason.MALFORMED_RESPONSE


class MalformedEvidence(EvidenceError):
    reason = Reason.MALFORMED_RESPONSE


class DuplicateJSONKey(EvidenceError):
    reason = Reason.DUPLICATE_JSON_KEY


class UnsupportedProtocol(EvidenceError):
    reason = Reason.UNSUPPORTED_PROTOCOL


class AciAliasReport(UnsupportedProtocol):
    """A legacy ``/v1/attestation/report`` answer that is an ACI gateway's alias: it attests the
    gateway's key for any model name, so it never stands for a model node
    (``docs/protocol-aci.md``)."""

    reason = Reason.ACI_ALIAS_REPORT


class ReceiptError(RedpillError):
    """A receipt that cannot be read, written or re-verified."""


#: Why an unpinned TD fails a legacy verdict, and how to pin it (docs/code-identity.md).
UNPINNED_CODE = (
    "the served code is not pinned: its MRTD/RTMR1/RTMR2 match no image of the trust anchors' "
    "os_images and the policy pins none. Pin it with VerificationPolicy(allowed_mrtds=..., "
    "allowed_rtmr1=..., allowed_rtmr2=...) or add the image to TrustAnchors(os_images=...) "
    "(docs/code-identity.md)"
)


class VerificationFailed(RedpillError):
    """Raised in strict mode when a verdict is not ``verified``.

    Nothing is lost: ``response`` carries what the caller would otherwise have received (a LangChain
    ``ChatResult``/message, a LlamaIndex ``ChatResponse``, or the raw content), and ``result`` the
    verdict with its reasons.
    """

    def __init__(self, result: VerificationResult, *, response: Any = None) -> None:
        reasons = ", ".join(r.value for r in result.reasons) or "none"
        unpinned = (result.code_identity or {}).get("kind") == "unpinned"
        refused = unpinned and result.checks.get("measurements") == "fail"
        hint = f" ({UNPINNED_CODE})" if refused else ""
        super().__init__(
            f"Redpill verification {result.status.value} for chat {result.chat_id!s}: {reasons}"
            + hint
        )
        self.result = result
        self.response = response
        self.reason = result.reasons[0] if result.reasons else None
