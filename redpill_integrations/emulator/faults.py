"""Fault injection: what the emulator does wrong, on purpose, and when.

Faults come from three places, merged field by field (later wins for fields it sets to a
non-default value): the global set (``Emulator.set_faults(f)``), the per-model set
(``set_faults(f, model=...)``) and the request header ``X-Emulator-Faults: <JSON of fields>``.

Counted signature-lookup faults apply to the lookups *of one chat id*, in this order of windows:
``signature_not_ready`` (404 "Chat id not found or expired"), ``wrong_node`` (404 as from a node
that never saw the chat), ``rate_limited`` (429, ``Retry-After: retry_after`` unless None),
``server_error`` (``server_error_status``), ``error_code_envelope`` (200 with ``{"error_code"}``);
e.g. ``Faults(signature_not_ready=2, rate_limited=1)`` answers 404, 404, 429, then the signature.
Chat faults (``reset_mid_stream``, ``truncate_stream``, ``tamper_response``, ``foreign_signer``,
``sign_other_request``, ``signature_ttl``, ``signature_delay``) are taken from the chat request;
attestation faults from the report request; NRAS faults from the faults of the model whose report
issued the nonce (or the NRAS request's own header). ``attestation_reset`` counts attestation
fetches since the faults were set.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

__all__ = [
    "FAULTS_HEADER",
    "Faults",
    "FaultsHeaderError",
    "SignatureFault",
    "TamperMode",
    "parse_faults_header",
]

FAULTS_HEADER = "X-Emulator-Faults"
TamperMode = Literal["alter", "inject", "drop", "reorder"]
SignatureFault = Literal[
    "not_ready", "wrong_node", "rate_limited", "server_error", "error_code_envelope"
]


class FaultsHeaderError(ValueError):
    """The ``X-Emulator-Faults`` header is not a JSON object of known fields (answered 400)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Faults:
    """Every field defaults to "behave correctly"."""

    # signature lookups (counted per chat id)
    signature_not_ready: int = 0
    wrong_node: int = 0
    rate_limited: int = 0
    retry_after: float | None = 1.0
    server_error: int = 0
    server_error_status: int = 503
    error_code_envelope: int = 0
    #: extra seconds before answering a signature lookup (a slow node)
    lookup_delay: float = 0.0
    # chats
    reset_mid_stream: bool = False
    truncate_stream: bool = False
    #: bytes changed after signing: JSON bodies are altered; SSE alter/inject/drop/reorder an event
    tamper_response: TamperMode | None = None
    foreign_signer: bool = False
    sign_other_request: bool = False
    #: seconds the signature stays 404 after the response finished
    signature_delay: float | None = None
    #: TTL override for this chat's signature (0 expires it at once)
    signature_ttl: float | None = None
    # attestation reports
    ignore_nonce: bool = False
    compose_mismatch: bool = False
    rtmr_mismatch: bool = False
    attestation_reset: int = 0
    unknown_report_shape: bool = False
    # NRAS
    gpu_wrong_nonce: bool = False
    gpu_unknown_key: bool = False

    def merged(self, other: Faults | None) -> Faults:
        """``self`` overridden by every non-default field of ``other``."""
        if other is None:
            return self
        defaults = Faults()
        changes = {
            f.name: getattr(other, f.name)
            for f in dataclasses.fields(other)
            if getattr(other, f.name) != getattr(defaults, f.name)
        }
        return dataclasses.replace(self, **changes)

    def signature_fault(self, lookup_index: int) -> SignatureFault | None:
        """Which counted fault answers the ``lookup_index``-th (0-based) lookup of a chat id."""
        windows: list[tuple[SignatureFault, int]] = [
            ("not_ready", self.signature_not_ready),
            ("wrong_node", self.wrong_node),
            ("rate_limited", self.rate_limited),
            ("server_error", self.server_error),
            ("error_code_envelope", self.error_code_envelope),
        ]
        edge = 0
        for name, count in windows:
            edge += max(0, count)
            if lookup_index < edge:
                return name
        return None

    def to_header(self) -> str:
        """This fault set as an ``X-Emulator-Faults`` header value (non-default fields only)."""
        defaults = Faults()
        return json.dumps(
            {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(defaults, f.name)
            }
        )


def parse_faults_header(value: str | None) -> Faults | None:
    """Parse the header; raises :class:`FaultsHeaderError` for bad JSON or unknown fields."""
    if not value:
        return None
    try:
        data: Any = json.loads(value)
    except ValueError as exc:
        raise FaultsHeaderError("X-Emulator-Faults is not JSON") from exc
    if not isinstance(data, dict):
        raise FaultsHeaderError("X-Emulator-Faults must be a JSON object")
    known = {f.name for f in dataclasses.fields(Faults)}
    unknown = set(data) - known
    if unknown:
        raise FaultsHeaderError(f"unknown fault fields: {sorted(unknown)}")
    for name, value in data.items():
        if not _type_ok(name, value):
            raise FaultsHeaderError(f"fault field {name!r} has a wrong type or value")
    return Faults(**data)


_NUMBER_OR_NONE = {"retry_after", "signature_delay", "signature_ttl"}


def _type_ok(name: str, value: Any) -> bool:
    default = getattr(Faults(), name)
    if name == "tamper_response":
        return value in (None, "alter", "inject", "drop", "reorder")
    if isinstance(default, bool):
        return isinstance(value, bool)
    if name in _NUMBER_OR_NONE and value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(default, float) or name in _NUMBER_OR_NONE or isinstance(value, int)
