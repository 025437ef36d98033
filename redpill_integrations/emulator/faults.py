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
    "JsonFault",
    "ReceiptHashFault",
    "ReceiptMismatch",
    "SignatureFault",
    "TamperMode",
    "parse_faults_header",
]

FAULTS_HEADER = "X-Emulator-Faults"
TamperMode = Literal["alter", "inject", "drop", "reorder"]
ReceiptHashFault = Literal["request", "response"]
ReceiptMismatch = Literal["chat_id", "endpoint", "model", "receipt_id"]
JsonFault = Literal["duplicate_key", "deep"]
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
    # ACI mode (protocol="aci"); see docs/aci-emulator.md
    #: receipt lookups of one receipt id answered 404 before the receipt (a huge N: never)
    receipt_not_ready: int = 0
    #: seconds the receipt stays 404 after the response completed (a late receipt)
    receipt_delay: float | None = None
    #: receipt lookups answered 401 (as if the bearer token were missing)
    receipt_unauthorized: bool = False
    #: the receipt's body hash of "request" or "response" names other bytes (validly signed)
    receipt_body_hash: ReceiptHashFault | None = None
    receipt_bad_signature: bool = False
    #: signed by an Ed25519 key outside the keyset (``key_id`` not in the keyset)
    receipt_foreign_key: bool = False
    #: the receipt names another chat id / endpoint / model / receipt id (validly signed)
    receipt_mismatch: ReceiptMismatch | None = None
    #: ``served_at`` an hour before the exchange
    stale_served_at: bool = False
    #: ``upstream.verified`` says ``failed`` while the gateway serves anyway
    upstream_failed: bool = False
    #: ``upstream.verified.required`` is false even when the client sent the constraint
    upstream_not_required: bool = False
    #: the session served under an id whose document does not hash to that id
    session_id_mismatch: bool = False
    #: the inference response lacks ``X-Receipt-Id``
    missing_receipt_id: bool = False
    #: rotate the keyset once this inference response is complete
    rotate_keyset: bool = False
    #: the report restates a keyset digest that does not recompute
    keyset_digest_mismatch: bool = False
    #: the quote's report-data slot is over another statement
    quote_other_statement: bool = False
    #: the keyset's ``not_after`` is in the past (everywhere it is served)
    keyset_expired: bool = False
    #: the custody chains end at a KMS root nobody trusts
    custody_unknown_root: bool = False
    #: every ACI document (report, receipt, session) has a duplicate key or nests too deep
    json_fault: JsonFault | None = None

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


_NUMBER_OR_NONE = {"retry_after", "signature_delay", "signature_ttl", "receipt_delay"}
_CHOICES: dict[str, tuple[object, ...]] = {
    "tamper_response": (None, "alter", "inject", "drop", "reorder"),
    "receipt_body_hash": (None, "request", "response"),
    "receipt_mismatch": (None, "chat_id", "endpoint", "model", "receipt_id"),
    "json_fault": (None, "duplicate_key", "deep"),
}


def _type_ok(name: str, value: Any) -> bool:
    default = getattr(Faults(), name)
    if name in _CHOICES:
        return value in _CHOICES[name]
    if isinstance(default, bool):
        return isinstance(value, bool)
    if name in _NUMBER_OR_NONE and value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(default, float) or name in _NUMBER_OR_NONE or isinstance(value, int)
