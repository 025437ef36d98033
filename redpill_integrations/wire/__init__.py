"""I/O around the pure core: capture, fetchers with retries, caches, the RedpillVerifier facade.

Modules: ``capture`` (transports) and ``recorder`` (where exchanges wait), ``flow`` (sans-I/O
effects and the sync/async drivers), ``http`` (requests, the API-key rule, capped reads), ``cache``
(TTL + single-flight), ``fetch_signature``, ``fetch_attestation`` and ``pccs`` (the fetchers),
``gateway`` (which protocol the gateway speaks, its model listing: one cached probe),
``protocols`` (the seam: which evidence to fetch and how to judge it), ``legacy`` (the per-node
protocol), ``verify_flow`` (one verification, written once: the steps every protocol shares) and
``verifier`` (the facade).
"""

from redpill_integrations.wire.capture import (
    CAPTURE_HEADER,
    AsyncCapturingTransport,
    CapturedExchange,
    CapturingTransport,
    ExchangeRecorder,
)
from redpill_integrations.wire.fetch_attestation import AttestationOutcome
from redpill_integrations.wire.gateway import GatewayInfo, ModelInfo
from redpill_integrations.wire.verifier import RedpillVerifier

__all__ = [
    "CAPTURE_HEADER",
    "AsyncCapturingTransport",
    "AttestationOutcome",
    "CapturedExchange",
    "CapturingTransport",
    "ExchangeRecorder",
    "GatewayInfo",
    "ModelInfo",
    "RedpillVerifier",
]
