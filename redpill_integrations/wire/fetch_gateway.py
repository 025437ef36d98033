"""The ACI gateway's identity: its attestation document, DCAP collateral and verdict
(``docs/aci-wire.md`` §3).

:func:`gateway_attestation_flow` (uncached; ``RedpillVerifier.attest_gateway``):

1. ``GET {base}/aci/attestation?nonce=<64 lower-case hex from secrets>`` (API key: base origin
   only, as every request to the gateway);
2. ``verify.aci.parse_aci_report``; the quote's FMSPC and PCK CA name the DCAP collateral, fetched
   from ``trust.pccs_url`` by :mod:`.pccs` (shared and cached per FMSPC within its validity);
3. ``verify.aci.verify_gateway`` on the report, our nonce and that collateral at ``now``.

``progress(step)`` sees ``report``, ``collateral`` and ``verify``. Everything fetched is kept in
the :class:`GatewayAttestation` exactly as received (report bytes, nonce, collateral JSON), so a
receipt can re-judge it offline.

:func:`cached_gateway_flow` shares one attestation per keyset digest, the one the response's
``X-ACI-Keyset-Digest`` header names (single-flight). A digest not seen before (a rotated keyset)
is simply a new key: the gateway is attested again. When the fetched report names another keyset
than the header (a rotation under way), it is attested once more, then judged with what it
serves. A passing identity whose keyset is the header's is kept for ``min(policy TTL, keyset
not_after, collateral validity)``; anything else is shared with concurrent waiters, never kept.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import Reason
from redpill_integrations.verify import quote_fmspc, quote_pck_ca
from redpill_integrations.verify.aci import GatewayVerdict, parse_aci_report, verify_gateway
from redpill_integrations.wire.flow import Fetched, FetchFailed, Flow, Shared
from redpill_integrations.wire.http import Budget, Endpoints
from redpill_integrations.wire.pccs import collateral_flow

__all__ = ["GatewayAttestation", "cached_gateway_flow", "gateway_attestation_flow"]

logger = logging.getLogger("redpill_integrations.wire")

MAX_ACI_REPORT_BYTES = 4 * 1024 * 1024

Progress = Callable[[str], None]


def _no_progress(step: str) -> None:
    return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayAttestation:
    """One attestation of the gateway: what was fetched, as received, and its verdict.

    ``report`` is the attestation document's bytes (None when none was obtained: then
    ``fetch_reason`` says why); ``verdict`` is :func:`verify_gateway`'s, None when the document
    could not be parsed (``fetch_reason`` is then the parser's reason, ``report`` kept);
    ``attested_at`` the ``now`` it was judged at.
    """

    report: bytes | None
    nonce: str
    collateral_json: str | None
    attested_at: datetime
    verdict: GatewayVerdict | None = None
    fetch_reason: Reason | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict is not None and not self.verdict.reasons

    @property
    def keyset_digest(self) -> str | None:
        """The recomputed digest of the attested keyset (None without a verdict)."""
        return self.verdict.keyset_digest if self.verdict is not None else None

    def ttl(self, policy: VerificationPolicy, now: datetime) -> float:
        """How long this identity may be reused: 0 unless it passed."""
        if not self.passed or self.verdict is None:
            return 0.0
        limits = [
            policy.attestation_cache_ttl,
            self.verdict.report.keyset.not_after - now.timestamp(),
        ]
        if self.verdict.valid_until is not None:
            limits.append((self.verdict.valid_until - now).total_seconds())
        return max(0.0, min(limits))


def _answer_reason(answer: Fetched | FetchFailed) -> tuple[Reason, str] | None:
    if isinstance(answer, FetchFailed):
        return answer.reason, answer.detail
    if answer.status_code == 429:
        return Reason.RATE_LIMITED, "ACI attestation: HTTP 429"
    if answer.status_code != 200:
        return Reason.UPSTREAM_HTTP_ERROR, f"ACI attestation: HTTP {answer.status_code}"
    return None


def gateway_attestation_flow(
    endpoints: Endpoints,
    *,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: Callable[[], datetime],
    progress: Progress = _no_progress,
    monotonic: Callable[[], float] = time.monotonic,
) -> Flow[GatewayAttestation]:
    """A fresh attestation of the gateway with a fresh nonce (never cached)."""
    budget = Budget(policy.attestation_deadline, monotonic)
    nonce = secrets.token_hex(32)
    progress("report")
    url = f"{endpoints.base_url}/aci/attestation"
    answer = yield from endpoints.fetch(
        budget, "GET", url, MAX_ACI_REPORT_BYTES, params={"nonce": nonce}
    )
    failed = _answer_reason(answer)
    if failed is not None or not isinstance(answer, Fetched):
        reason, detail = failed or (Reason.UPSTREAM_HTTP_ERROR, "no answer")
        return GatewayAttestation(
            report=None, nonce=nonce, collateral_json=None, attested_at=now(),
            fetch_reason=reason, detail=detail,
        )  # fmt: skip
    try:
        report = parse_aci_report(answer.body)
    except EvidenceError as exc:
        return GatewayAttestation(
            report=answer.body, nonce=nonce, collateral_json=None, attested_at=now(),
            fetch_reason=exc.reason or Reason.MALFORMED_RESPONSE,
            detail=f"ACI attestation: {str(exc)[:300]}",
        )  # fmt: skip
    progress("collateral")
    collateral_json: str | None = None
    detail = ""
    try:
        fmspc, ca = quote_fmspc(report.quote), quote_pck_ca(report.quote)
    except (EvidenceError, ValueError) as exc:
        detail = f"quote names no FMSPC: {str(exc)[:200]}"  # the quote check says why
    else:
        collateral = yield from collateral_flow(
            endpoints, pccs_url=trust.pccs_url, fmspc=fmspc, ca=ca, now=now, budget=budget
        )
        collateral_json = collateral.json
        detail = collateral.problem or ""
    progress("verify")
    at = now()
    verdict = verify_gateway(
        report, nonce=nonce, collateral_json=collateral_json, policy=policy, trust=trust, now=at
    )
    return GatewayAttestation(
        report=answer.body, nonce=nonce, collateral_json=collateral_json, attested_at=at,
        verdict=verdict, detail=detail,
    )  # fmt: skip


def cached_gateway_flow(
    endpoints: Endpoints,
    *,
    keyset_digest: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.monotonic,
) -> Flow[GatewayAttestation]:
    """The gateway identity for a response whose header names ``keyset_digest`` (see the
    module docstring); ``None`` (no header) is never kept."""

    def attest() -> Flow[GatewayAttestation]:
        return gateway_attestation_flow(
            endpoints, policy=policy, trust=trust, now=now, monotonic=monotonic
        )

    def make() -> Flow[GatewayAttestation]:
        first = yield from attest()
        if keyset_digest is None or first.keyset_digest in (keyset_digest, None):
            return first
        logger.info("ACI keyset changed under us; attesting the gateway once more")
        again: GatewayAttestation = yield from attest()
        return again

    def ttl(value: GatewayAttestation) -> float:
        if keyset_digest is None or value.keyset_digest != keyset_digest:
            return 0.0
        return value.ttl(policy, now())

    key = ("aci-gateway", endpoints.base_url, keyset_digest, policy.fingerprint(), id(trust))
    value: GatewayAttestation = yield Shared(key, make, ttl)
    return value
