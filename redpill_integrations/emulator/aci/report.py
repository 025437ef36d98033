"""``GET /v1/aci/attestation`` (generation B) and the legacy ``/v1/attestation/report`` alias.

The statement is the exact byte string
``{"keyset_digest":"sha256:<hex>","nonce":"<nonce>"|null,"purpose":"aci.report_data.v1"}``;
``report_data`` = its sha256; the quote's report-data slot = ``report_data ‖ 32 zero bytes``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from redpill_integrations.emulator.aci.gateway import AciGateway
from redpill_integrations.emulator.aci.identity import GATEWAY_REPO_URL
from redpill_integrations.emulator.faults import Faults
from redpill_integrations.emulator.quote import QuoteFactory

__all__ = ["STALE_ACI_NONCE", "build_aci_report", "build_alias_report", "statement"]

#: the nonce an ``ignore_nonce`` report binds instead of the client's
STALE_ACI_NONCE = hashlib.sha256(b"redpill-emulator stale aci nonce").hexdigest()


def statement(keyset_digest: str, nonce: str | None) -> bytes:
    member = "null" if nonce is None else f'"{nonce}"'
    return (
        f'{{"keyset_digest":"{keyset_digest}","nonce":{member},"purpose":"aci.report_data.v1"}}'
    ).encode("ascii")


def _evidence(
    gw: AciGateway, quote: bytes, faults: Faults
) -> tuple[dict[str, Any], dict[str, Any]]:
    cvm = gw.cvm
    events = [dict(e) for e in cvm.event_log]
    if faults.rtmr_mismatch:
        events[-1]["digest"] = hashlib.sha384(
            b"tampered " + events[-1]["digest"].encode()
        ).hexdigest()
    compose = cvm.app_compose
    if faults.compose_mismatch:
        compose = compose.replace("aci-gateway:dev", "aci-gateway:other")
    evidence = {
        "quote": quote.hex(),
        "quote_report_data": quote[568:632].hex(),
        "event_log": json.dumps(events, separators=(",", ":")),
        "vm_config": cvm.vm_config,
        "app_compose": compose,
        "key_custody": gw.keys.custody(gw.kms, rogue=faults.custody_unknown_root),
    }
    provenance = {
        "repo_url": GATEWAY_REPO_URL,
        "repo_commit": cvm.repo_commit,
        "image_digest": None,
        "image_provenance": None,
    }
    return evidence, provenance


def build_aci_report(
    gw: AciGateway, quotes: QuoteFactory, *, nonce: str | None, faults: Faults, debug: bool
) -> dict[str, Any]:
    """The generation-B report; a fresh quote per call."""
    expired = faults.keyset_expired
    keyset = gw.keyset(expired=expired)
    digest = gw.keyset_digest(expired=expired)
    bound_nonce = STALE_ACI_NONCE if faults.ignore_nonce else nonce
    report_data = hashlib.sha256(statement(digest, bound_nonce)).digest()
    slot = report_data + bytes(32)
    if faults.quote_other_statement:
        other = statement(digest, STALE_ACI_NONCE if nonce != STALE_ACI_NONCE else None)
        slot = hashlib.sha256(other).digest() + bytes(32)
    quote = quotes.build(gw.cvm.measurements, slot, debug=debug)
    evidence, provenance = _evidence(gw, quote, faults)
    restated = digest
    if faults.keyset_digest_mismatch:
        restated = "sha256:" + hashlib.sha256(b"another keyset " + digest.encode()).hexdigest()
    return {
        "api_version": "aci/1",
        "workload_keyset_digest": restated,
        "attestation": {
            "tee_type": "tdx",
            "workload_keyset": keyset,
            "report_data": report_data.hex(),
            "source_provenance": provenance,
            "evidence": evidence,
        },
        "service_capabilities": {"supported_e2ee_versions": ["2"], "serving": "aggregator"},
    }


def build_alias_report(
    gw: AciGateway,
    quotes: QuoteFactory,
    *,
    nonce_hex: str,
    faults: Faults,
    debug: bool,
    nvidia_payload: str,
) -> dict[str, Any]:
    """The legacy alias: the gateway's report over ``address(20)‖0¹²‖nonce(32)`` (ecdsa)."""
    address = bytes.fromhex(gw.keys.e2ee_address[2:])
    nonce_used = STALE_ACI_NONCE if faults.ignore_nonce else nonce_hex
    legacy = address.ljust(32, b"\x00") + bytes.fromhex(nonce_used)
    quote = quotes.build(gw.cvm.measurements, legacy, debug=debug)
    evidence, provenance = _evidence(gw, quote, faults)
    attestation = {
        "tee_type": "tdx",
        "workload_keyset": gw.keyset(),
        "report_data": legacy.hex(),
        "source_provenance": provenance,
        "evidence": evidence,
    }
    pub = gw.keys.e2ee_k1.public_key.format(compressed=False).hex()
    body: dict[str, Any] = {
        "api_version": "aci/1",
        "workload_keyset_digest": gw.keyset_digest(),
        "attestation": attestation,
        "service_capabilities": {"supported_e2ee_versions": ["2"], "serving": "aggregator"},
        "signing_public_key": pub,
        "signing_algo": "ecdsa",
        "signing_address": gw.keys.e2ee_address,
        "intel_quote": quote.hex(),
        "nvidia_payload": nvidia_payload,
    }
    body["all_attestations"] = [dict(body)]
    return body
