"""Attestation report shapes (SPEC §2.3), parsed at the boundary into frozen models."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class NodeAttestation:
    """One node's flat attestation."""

    signing_address: str  # lower-case hex without 0x (20 bytes ecdsa, 32 bytes ed25519)
    signing_algo: str
    request_nonce: str | None
    intel_quote: bytes
    nvidia_payload: str | None  # the JSON *string* exactly as received; POSTed unchanged to NRAS
    event_log: tuple[dict[str, Any], ...]
    info: dict[str, Any] | None
    tls_cert_fingerprint: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AttestationReport:
    shape: str  # "flat" | "two-layer"
    nodes: tuple[NodeAttestation, ...]  # the model node(s); all_attestations expanded
    gateway: NodeAttestation | None = None

    def node_for(self, signer: str) -> NodeAttestation | None:
        """The node whose signing address equals ``signer`` (case-insensitive, 0x optional)."""
        raise NotImplementedError


def parse_report(body: bytes) -> AttestationReport:
    """Raises ``UnsupportedProtocol`` for chutes/tinfoil/unknown shapes, ``MalformedEvidence`` or
    ``DuplicateJSONKey`` for bad input."""
    raise NotImplementedError
