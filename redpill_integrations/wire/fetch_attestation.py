"""Fetching one signer's attestation evidence and verifying it with the pure core.

See docs/protocol-legacy.md §3-§10.

Per fetch:

1. ``GET {base}/attestation/report?model=&nonce=&signing_algo=&signing_address=`` with a fresh
   32-byte ``secrets.token_bytes`` nonce (API key: base origin only);
2. ``verify.parse_report``; for the signer's node and the gateway (two-layer) quotes,
   collateral from ``trust.pccs_url`` by FMSPC (:mod:`.pccs`, shared and cached per FMSPC);
3. the node's ``nvidia_payload`` string POSTed unchanged to ``trust.nras_url``; the JWKS from
   ``trust.nras_jwks_url`` (shared, cached for ``JWKS_TTL``);
4. ``verify.judge_attestation`` on an :class:`AttestationEvidence` holding all of it as received.
   Pieces that could not be fetched are listed in ``evidence.missing`` as
   ``DEPENDENCY_UNAVAILABLE`` (keys ``verify.MISSING_*``).

Only the base origin and the three trust-anchor URLs are contacted; nothing named in a server
answer is fetched. ``progress(step)`` is called with ``"report"``, ``"collateral"``, ``"gpu"``,
``"jwks"`` and ``"verify"`` as the flow goes. Without a ``signer`` (``RedpillVerifier.attest``), the
key the report's first model node names is the one whose binding is verified.

:func:`cached_attestation_flow` shares and caches a *passing* verdict (with its evidence) per
(base URL, model, signer, policy fingerprint, trust anchors) for ``min(policy TTL, verdict
valid_until)``; a non-passing verdict is shared with concurrent waiters but never kept.
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
from redpill_integrations.verify import (
    MISSING_COLLATERAL,
    MISSING_JWKS,
    MISSING_NRAS,
    AttestationEvidence,
    AttestationVerdict,
    failed_fetch_verdict,
    judge_attestation,
    parse_report,
    quote_fmspc,
    quote_pck_ca,
)
from redpill_integrations.wire.flow import Fetched, FetchFailed, Flow, Shared
from redpill_integrations.wire.http import Budget, Endpoints
from redpill_integrations.wire.pccs import collateral_flow

__all__ = [
    "AttestationOutcome",
    "attestation_flow",
    "cached_attestation_flow",
]

logger = logging.getLogger("redpill_integrations.wire")

MAX_REPORT_BYTES = 8 * 1024 * 1024
MAX_NRAS_BYTES = 2 * 1024 * 1024
MAX_JWKS_BYTES = 256 * 1024
JWKS_TTL = 3600.0

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class AttestationOutcome:
    """A verdict and the evidence it was computed from (``None`` when no report was obtained;
    ``fetch_reason`` then says why)."""

    verdict: AttestationVerdict
    evidence: AttestationEvidence | None
    fetch_reason: Reason | None = None

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def wire_address(signer: str) -> str:
    """The signer as servers expect it in ``signing_address=``: an ecdsa address (20 bytes) with
    ``0x`` as Ethereum tooling prints it, an ed25519 key (32 bytes) as bare hex. The package's
    canonical form (lower-case hex without ``0x``) is kept everywhere else."""
    return f"0x{signer}" if len(signer) == 40 else signer


def _no_progress(step: str) -> None:
    return None


def _answer_reason(answer: Fetched | FetchFailed) -> tuple[Reason, str] | None:
    if isinstance(answer, FetchFailed):
        return answer.reason, answer.detail
    if answer.status_code == 429:
        return Reason.RATE_LIMITED, "attestation report: HTTP 429"
    if answer.status_code != 200:
        return Reason.UPSTREAM_HTTP_ERROR, f"attestation report: HTTP {answer.status_code}"
    return None


def _jwks_flow(endpoints: Endpoints, budget: Budget, url: str) -> Flow[bytes | None]:
    def fetch() -> Flow[bytes | None]:
        answer = yield from endpoints.fetch(budget, "GET", url, MAX_JWKS_BYTES)
        if isinstance(answer, Fetched) and answer.status_code == 200:
            return answer.body
        return None

    body: bytes | None = yield Shared(
        ("jwks", url), fetch, lambda v: JWKS_TTL if v is not None else 0.0
    )
    return body


def attestation_flow(
    endpoints: Endpoints,
    *,
    model: str,
    signer: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: Callable[[], datetime],
    progress: Progress = _no_progress,
    monotonic: Callable[[], float] = time.monotonic,
) -> Flow[AttestationOutcome]:
    budget = Budget(policy.attestation_deadline, monotonic)
    nonce = secrets.token_bytes(32).hex()
    params = {"model": model, "nonce": nonce, "signing_algo": policy.signing_algo}
    if signer:
        params["signing_address"] = wire_address(signer)
    progress("report")
    answer = yield from endpoints.fetch(
        budget, "GET", f"{endpoints.base_url}/attestation/report", MAX_REPORT_BYTES, params=params
    )
    failure = _answer_reason(answer)
    if failure is not None or not isinstance(answer, Fetched):
        reason, detail = failure or (Reason.UPSTREAM_HTTP_ERROR, "no answer")
        return AttestationOutcome(failed_fetch_verdict(reason, detail), None, reason)
    report_bytes = answer.body
    collateral: dict[str, str] = {}
    missing: dict[str, Reason] = {}
    nras_response: bytes | None = None
    jwks: bytes | None = None
    core_signer = signer
    try:
        report = parse_report(report_bytes)
    except EvidenceError:
        report = None  # the core turns the same bytes into the exact reason
    if report is not None:
        node = report.node_for(signer) if signer else (report.nodes[0] if report.nodes else None)
        if signer is None and node is not None:
            core_signer = node.signing_address  # attest(): the key the report itself names
        progress("collateral")
        for n in (node, report.gateway):
            if n is None:
                continue
            try:
                fmspc, ca = quote_fmspc(n.intel_quote).lower(), quote_pck_ca(n.intel_quote)
            except EvidenceError:
                continue  # an unreadable quote fails in the core
            if fmspc in collateral:
                continue
            got = yield from collateral_flow(
                endpoints, pccs_url=trust.pccs_url, fmspc=fmspc, ca=ca, now=now, budget=budget
            )
            if got.json is not None:
                collateral[fmspc] = got.json
            else:
                logger.warning("collateral for FMSPC %s unavailable: %s", fmspc, got.problem)
                missing[f"{MISSING_COLLATERAL}:{fmspc}"] = Reason.DEPENDENCY_UNAVAILABLE
        if policy.require_gpu and node is not None and node.nvidia_payload is not None:
            progress("gpu")
            nras = yield from endpoints.fetch(
                budget,
                "POST",
                trust.nras_url,
                MAX_NRAS_BYTES,
                content=node.nvidia_payload.encode("utf-8"),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            if isinstance(nras, Fetched) and nras.status_code == 200:
                nras_response = nras.body
            else:
                missing[MISSING_NRAS] = Reason.DEPENDENCY_UNAVAILABLE
            progress("jwks")
            jwks = yield from _jwks_flow(endpoints, budget, trust.nras_jwks_url)
            if jwks is None:
                missing[MISSING_JWKS] = Reason.DEPENDENCY_UNAVAILABLE
    fetched_at = now()  # the verdict is computed at this instant, so receipts can replay it
    evidence = AttestationEvidence(
        report=report_bytes,
        nonce=nonce,
        collateral=collateral,
        nras_response=nras_response,
        nras_jwks=jwks,
        fetched_at=fetched_at,
        missing=missing,
    )
    progress("verify")
    verdict = judge_attestation(
        evidence, signer=core_signer, policy=policy, trust=trust, at=fetched_at
    )
    return AttestationOutcome(verdict, evidence)


def cached_attestation_flow(
    endpoints: Endpoints,
    *,
    model: str,
    signer: str,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.monotonic,
) -> Flow[AttestationOutcome]:
    def ttl(outcome: AttestationOutcome) -> float:
        if not outcome.passed:
            return 0.0
        seconds = policy.attestation_cache_ttl
        until = outcome.verdict.valid_until
        if until is not None:
            seconds = min(seconds, (until - now()).total_seconds())
        return max(0.0, seconds)

    key = (
        "attestation",
        endpoints.base_url,
        model,
        signer.lower(),
        policy.fingerprint(),
        trust.kind,
        trust.pccs_url,
        trust.nras_url,
        trust.nras_jwks_url,
        trust.intel_root_ca_der,
    )
    outcome: AttestationOutcome = yield Shared(
        key,
        lambda: attestation_flow(
            endpoints,
            model=model,
            signer=signer,
            policy=policy,
            trust=trust,
            now=now,
            monotonic=monotonic,
        ),
        ttl,
    )
    return outcome
