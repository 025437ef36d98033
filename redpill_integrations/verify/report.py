"""Attestation report shapes (SPEC §2.3), parsed at the boundary into frozen models.

Shapes, detected by keys:

* **flat** (Phala vllm-proxy, NEAR model nodes): ``signing_address``, ``intel_quote``, ... and
  optionally ``all_attestations`` (one flat object per node; expanded into :attr:`nodes`);
* **two-layer** (NEAR AI Cloud): ``gateway_attestation`` + ``model_attestations: [flat, ...]``;
* anything with ``attestation_type`` (chutes, tinfoil) or without the keys above raises
  :class:`UnsupportedProtocol`;
* an ACI gateway's legacy alias (``api_version: "aci/…"``, a ``workload_keyset_digest`` or an
  ``attestation.workload_keyset`` beside the flat keys) raises :class:`AciAliasReport`: the gateway
  answers it for every model name with its own key, so it proves nothing about a model node. Such
  a gateway is verified through its ACI receipts instead (``docs/protocol-aci.md``).

Parsing validates types, hex and lengths and normalises encodings (hex or base64 quote, event log
and ``tcb_info`` given as JSON strings); it proves nothing: the checks live in ``attestation.py``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from redpill_integrations.errors import AciAliasReport, MalformedEvidence, UnsupportedProtocol
from redpill_integrations.verify.encoding import (
    as_dict,
    as_str,
    decode_hex_or_base64,
    loads_strict,
    norm_hex,
)

__all__ = ["MAX_REPORT_BYTES", "AttestationReport", "NodeAttestation", "parse_report"]

#: Largest report body accepted (real ones are 0.3-0.6 MB).
MAX_REPORT_BYTES = 16 * 1024 * 1024
MAX_QUOTE_BYTES = 64 * 1024
MAX_NODES = 256
MAX_EVENTS = 4096
MAX_EVENT_PAYLOAD_HEX = 2 * 1024 * 1024
MAX_NVIDIA_PAYLOAD = 8 * 1024 * 1024
MAX_TEXT = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class NodeAttestation:
    """One node's flat attestation.

    ``event_log`` entries are normalised dicts: ``imr`` (int 0-3), ``event_type`` (int),
    ``digest`` (lower hex, 48 bytes), ``event`` (str), ``event_payload`` (lower hex). ``info`` is
    the dstack info with ``tcb_info`` always a dict when present.
    """

    signing_address: str  # lower-case hex without 0x (20 bytes ecdsa, 32 bytes ed25519)
    signing_algo: str
    request_nonce: str | None
    intel_quote: bytes
    nvidia_payload: str | None  # the JSON *string* exactly as received; POSTed unchanged to NRAS
    event_log: tuple[dict[str, Any], ...]
    info: dict[str, Any] | None
    tls_cert_fingerprint: str | None = None
    model_name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AttestationReport:
    shape: str  # "flat" | "two-layer"
    nodes: tuple[NodeAttestation, ...]  # the model node(s); all_attestations expanded
    gateway: NodeAttestation | None = None

    def node_for(self, signer: str) -> NodeAttestation | None:
        """The node whose signing address equals ``signer`` (case-insensitive, 0x optional)."""
        if not isinstance(signer, str):
            return None
        wanted = signer.strip().lower().removeprefix("0x")
        for node in self.nodes:
            if node.signing_address == wanted:
                return node
        return None


def parse_report(body: bytes) -> AttestationReport:
    """Raises ``UnsupportedProtocol`` for chutes/tinfoil/unknown shapes, ``MalformedEvidence`` or
    ``DuplicateJSONKey`` for bad input."""
    data = loads_strict(body, what="attestation report", max_bytes=MAX_REPORT_BYTES)
    if not isinstance(data, dict):
        raise MalformedEvidence("attestation report is not a JSON object")
    if _is_aci_alias(data):
        raise AciAliasReport(
            "the report is an ACI gateway's legacy alias (it names the gateway's key for any "
            "model); verify this gateway's responses through their ACI receipts"
        )
    if "attestation_type" in data:
        kind = data["attestation_type"]
        label = kind[:32] if isinstance(kind, str) else type(kind).__name__
        raise UnsupportedProtocol(f"attestation reports of type {label!r} are not supported")
    if "gateway_attestation" in data or "model_attestations" in data:
        gateway = _parse_node(
            as_dict(data.get("gateway_attestation"), what="gateway_attestation"),
            what="gateway_attestation",
        )
        models = data.get("model_attestations")
        if not isinstance(models, list) or not models:
            raise MalformedEvidence("model_attestations is not a non-empty list")
        nodes = _parse_nodes(models, what="model_attestations")
        return AttestationReport(shape="two-layer", nodes=nodes, gateway=gateway)
    if "intel_quote" in data and "signing_address" in data:
        nodes = (_parse_node(data, what="report"),)
        extra = data.get("all_attestations")
        if extra is not None:
            if not isinstance(extra, list):
                raise MalformedEvidence("all_attestations is not a list")
            nodes += tuple(
                n for n in _parse_nodes(extra, what="all_attestations") if n not in nodes
            )
        return AttestationReport(shape="flat", nodes=nodes)
    raise UnsupportedProtocol("unknown attestation report shape")


def _is_aci_alias(data: dict[str, Any]) -> bool:
    version = data.get("api_version")
    if isinstance(version, str) and version.lower().startswith("aci/"):
        return True
    if "workload_keyset_digest" in data:
        return True
    attestation = data.get("attestation")
    return isinstance(attestation, dict) and "workload_keyset" in attestation


def _parse_nodes(items: list[Any], *, what: str) -> tuple[NodeAttestation, ...]:
    if len(items) > MAX_NODES:
        raise MalformedEvidence(f"{what} lists more than {MAX_NODES} nodes")
    return tuple(
        _parse_node(as_dict(item, what=f"{what}[{i}]"), what=f"{what}[{i}]")
        for i, item in enumerate(items)
    )


def _parse_node(data: dict[str, Any], *, what: str) -> NodeAttestation:
    address = norm_hex(data.get("signing_address"), what=f"{what}.signing_address", nbytes=(20, 32))
    inferred = "ecdsa" if len(address) == 40 else "ed25519"
    algo = data.get("signing_algo", inferred)
    if not isinstance(algo, str) or algo.lower() != inferred:
        raise MalformedEvidence(f"{what}.signing_algo does not match its signing_address length")
    nonce = data.get("request_nonce")
    quote = decode_hex_or_base64(
        data.get("intel_quote"), what=f"{what}.intel_quote", max_len=2 * MAX_QUOTE_BYTES
    )
    if len(quote) < 636:
        raise MalformedEvidence(f"{what}.intel_quote is too short to be a TDX quote")
    info = _parse_info(data.get("info"), what=f"{what}.info")
    raw_log = data.get("event_log")
    if raw_log is None and info is not None:
        raw_log = (info.get("tcb_info") or {}).get("event_log")
    tls = data.get("tls_cert_fingerprint")
    model = data.get("model_name")
    return NodeAttestation(
        signing_address=address,
        signing_algo=inferred,
        request_nonce=None
        if nonce is None
        else norm_hex(nonce, what=f"{what}.request_nonce", nbytes=32),
        intel_quote=quote,
        nvidia_payload=_parse_nvidia_payload(data.get("nvidia_payload"), what=what),
        event_log=_parse_event_log(raw_log, what=f"{what}.event_log"),
        info=info,
        tls_cert_fingerprint=None
        if tls is None
        else norm_hex(tls, what=f"{what}.tls_cert_fingerprint", nbytes=32),
        model_name=None
        if model is None
        else as_str(model, what=f"{what}.model_name", max_len=1024),
    )


def _parse_nvidia_payload(value: Any, *, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        # Some servers embed the payload as an object; NRAS accepts it re-serialised.
        return json.dumps(value, separators=(",", ":"))
    return as_str(value, what=f"{what}.nvidia_payload", max_len=MAX_NVIDIA_PAYLOAD)


def _parse_info(value: Any, *, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    info = dict(as_dict(value, what=what))
    tcb = info.get("tcb_info")
    if isinstance(tcb, str):
        tcb = loads_strict(tcb, what=f"{what}.tcb_info", max_bytes=MAX_TEXT)
    if tcb is not None:
        tcb = dict(as_dict(tcb, what=f"{what}.tcb_info"))
        if "app_compose" in tcb:
            as_str(tcb["app_compose"], what=f"{what}.tcb_info.app_compose", max_len=MAX_TEXT)
        info["tcb_info"] = tcb
    for key in ("app_id", "compose_hash", "os_image_hash"):
        if info.get(key) is not None:
            as_str(info[key], what=f"{what}.{key}", max_len=1024)
    return info


def _parse_event_log(value: Any, *, what: str) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = loads_strict(value, what=what, max_bytes=MAX_REPORT_BYTES)
    if not isinstance(value, list):
        raise MalformedEvidence(f"{what} is not a list")
    if len(value) > MAX_EVENTS:
        raise MalformedEvidence(f"{what} has more than {MAX_EVENTS} events")
    return tuple(_parse_event(e, what=f"{what}[{i}]") for i, e in enumerate(value))


def _parse_event(value: Any, *, what: str) -> dict[str, Any]:
    event = as_dict(value, what=what)
    imr, etype = event.get("imr"), event.get("event_type")
    if type(imr) is not int or not 0 <= imr <= 3:
        raise MalformedEvidence(f"{what}.imr is not an integer 0-3")
    if type(etype) is not int or not 0 <= etype < 1 << 32:
        raise MalformedEvidence(f"{what}.event_type is not a u32")
    name = event.get("event", "")
    return {
        "imr": imr,
        "event_type": etype,
        "digest": norm_hex(event.get("digest"), what=f"{what}.digest", nbytes=48),
        "event": as_str(name, what=f"{what}.event", max_len=1024),
        "event_payload": norm_hex(
            event.get("event_payload", ""),
            what=f"{what}.event_payload",
            max_len=MAX_EVENT_PAYLOAD_HEX,
        ),
    }
