"""``GET /v1/attestation/report`` bodies: flat, two-layer and (as a fault) chutes-shaped."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from redpill_integrations.emulator.eventlog import CvmIdentity
from redpill_integrations.emulator.faults import Faults
from redpill_integrations.emulator.nras import make_nvidia_payload
from redpill_integrations.emulator.signer import SigningKeys
from redpill_integrations.emulator.state import EmulatorState

__all__ = ["STALE_NONCE", "build_report"]

#: the nonce an ``ignore_nonce`` report carries instead of the client's
STALE_NONCE = hashlib.sha256(b"redpill-emulator stale nonce").hexdigest()


def _report_data(state: EmulatorState, keys: SigningKeys, algo: str, nonce: bytes) -> bytes:
    addr = keys.address_bytes(algo)
    if state.config.tls_bound:
        first = hashlib.sha256(addr + state.tls_fingerprint).digest()
    else:
        first = addr.ljust(32, b"\x00")
    return first + nonce


def _node_attestation(
    state: EmulatorState,
    node: CvmIdentity,
    keys: SigningKeys,
    algo: str,
    nonce_hex: str,
    faults: Faults,
    *,
    model: str | None,
    gpu: bool,
) -> dict[str, Any]:
    nonce = bytes.fromhex(nonce_hex)
    quote = state.quotes.build(
        node.measurements, _report_data(state, keys, algo, nonce), debug=state.config.debug_td
    )
    events = [dict(e) for e in node.event_log]
    if faults.rtmr_mismatch:
        # a digest that no longer replays to the quote's RTMR3
        events[-1]["digest"] = hashlib.sha384(
            b"tampered " + events[-1]["digest"].encode()
        ).hexdigest()
    app_compose = None
    if faults.compose_mismatch:
        app_compose = node.app_compose.replace("redpill-emulator:dev", "redpill-emulator:other")
    info = node.info(event_log=copy.deepcopy(events), app_compose=app_compose)
    out: dict[str, Any] = {}
    if model is not None:
        out["model_name"] = state.models[model].served_name
    out |= {
        "signing_address": keys.address(algo),
        "signing_algo": algo,
        "request_nonce": nonce_hex,
        "intel_quote": quote.hex(),
    }
    if algo == "ed25519":
        out["signing_public_key"] = keys.address(algo)
    if gpu:
        out["nvidia_payload"] = make_nvidia_payload(nonce_hex, state.config.gpu_count, state.seed)
    out["event_log"] = events
    out["info"] = info
    if state.config.tls_bound:
        out["tls_cert_fingerprint"] = state.tls_fingerprint.hex()
    out["emulator"] = "Redpill emulator: NOT a real TEE"
    return out


def build_report(
    state: EmulatorState,
    *,
    model: str,
    nonce_hex: str,
    algo: str,
    faults: Faults,
    shape: str | None = None,
) -> dict[str, Any]:
    """The report for one request; each call makes a fresh quote over that request's nonce.

    ``shape`` overrides the configured ``report_shape`` (the ACI sessions' upstream evidence)."""
    nonce_used = STALE_NONCE if faults.ignore_nonce else nonce_hex
    state.nonce_models[nonce_used] = model
    if faults.unknown_report_shape:
        return {
            "attestation_type": "chutes",
            "nonce": STALE_NONCE[:60],
            "all_attestations": [
                {
                    "instance_id": "emulator-chutes-0",
                    "nonce": STALE_NONCE[:60],
                    "quote": base64.b64encode(b"emulated chutes quote").decode(),
                    "gpu_evidence": [],
                }
            ],
        }
    node = _node_attestation(
        state, state.node, state.keys, algo, nonce_used, faults, model=model, gpu=True
    )
    if (shape or state.config.report_shape) == "two-layer":
        gateway = _node_attestation(
            state,
            state.gateway,
            state.gateway_keys,
            algo,
            nonce_used,
            faults,
            model=None,
            gpu=False,
        )
        return {"gateway_attestation": gateway, "model_attestations": [node]}
    node_copy = {k: v for k, v in node.items()}
    node["all_attestations"] = [node_copy]
    return node


def dumps(report: dict[str, Any]) -> bytes:
    return json.dumps(report, separators=(",", ":")).encode()
