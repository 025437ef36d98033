"""A complete, signed ACI world for tests: a gateway CVM whose quote verifies under the emulator's
test PKI, a dstack-KMS custody chain, a keyset, receipts and sessions. Only tests import this."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import coincurve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_hash.auto import keccak

from redpill_integrations.emulator.collateral import build_collateral
from redpill_integrations.emulator.eventlog import CvmIdentity
from redpill_integrations.emulator.pki import TestPki
from redpill_integrations.emulator.quote import QuoteFactory
from redpill_integrations.policy import OsImage, TrustAnchors
from redpill_integrations.verify.aci import AciExchange, jcs, jcs_sha256, report_data_statement

SEED = b"aci-core-tests"
NOW = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
NONCE = "5a" * 32
REQUEST = b'{"messages":[{"content":"hi","role":"user"}],"model":"phala/demo"}'
RESPONSE = b'{"choices":[],"id":"chatcmpl-abc"}'
RECEIPT_ID = "rcpt-0123456789abcdef01234567"

PKI = TestPki.create(SEED, now=NOW)
QUOTES = QuoteFactory(PKI, SEED)
CVM = CvmIdentity.create(SEED, "aci-gateway")
COLLATERAL = build_collateral(PKI, now=NOW).to_v3_json()
KMS_ROOT = coincurve.PrivateKey(hashlib.sha256(b"kms-root").digest())
APP_KEY = coincurve.PrivateKey(hashlib.sha256(b"kms-app").digest())
RECEIPT_KEY = Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32)
E2EE_KEY = coincurve.PrivateKey(hashlib.sha256(b"e2ee").digest())


def hexkey(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def trust(**changes: Any) -> TrustAnchors:
    m = CVM.measurements
    values: dict[str, Any] = {
        "kind": "aci-core-test",
        "intel_root_ca_der": PKI.root_der,
        "kms_root_pubkeys": (KMS_ROOT.public_key.format().hex(),),
        "aci_app_ids": (CVM.app_id,),
        "os_images": {
            CVM.os_image_hash: OsImage(
                name="emulated",
                mrtd=m.mr_td.hex(),
                rtmr1=m.rtmrs[1].hex(),
                rtmr2=m.rtmrs[2].hex(),
            )
        },
    }
    values.update(changes)
    return TrustAnchors(**values)


def custody_entry(
    role: str, purpose: str, algo: str, public_key: str, kms_public_key: str, *, root: Any = None
) -> dict[str, Any]:
    root = root or KMS_ROOT
    sig0 = APP_KEY.sign_recoverable(keccak(f"{purpose}:{kms_public_key}".encode()), hasher=None)
    issued = b"dstack-kms-issued:" + bytes.fromhex(CVM.app_id) + APP_KEY.public_key.format()
    sig1 = root.sign_recoverable(keccak(issued), hasher=None)
    return {
        "role": role,
        "path": f"aci/{role}/v1",
        "purpose": purpose,
        "algo": algo,
        "public_key": public_key,
        "kms_public_key": kms_public_key,
        "signature_chain": [sig0.hex(), sig1.hex()],
    }


def keyset(**changes: Any) -> dict[str, Any]:
    ks: dict[str, Any] = {
        "subject": None,
        "not_after": T + 30 * 86400,
        "receipt_signing_keys": [
            {"key_id": "receipt-1", "algo": "ed25519", "public_key": hexkey(RECEIPT_KEY)}
        ],
        "e2ee_public_keys": [
            {
                "key_id": "e2ee-1",
                "algo": "secp256k1-aes-256-gcm-hkdf-sha256",
                "public_key": E2EE_KEY.public_key.format(compressed=False).hex(),
            }
        ],
        "tls_public_keys": [{"spki_sha256": "c0" * 32, "domain": "api.example.com"}],
    }
    ks.update(changes)
    return ks


def report_dict(
    *,
    nonce: str | None = NONCE,
    ks: dict[str, Any] | None = None,
    digest: str | None = None,
    debug: bool = False,
    root: Any = None,
    slot: bytes | None = None,
) -> dict[str, Any]:
    ks = keyset() if ks is None else ks
    true_digest = jcs_sha256(ks)
    report_data = hashlib.sha256(report_data_statement(true_digest, nonce)).digest()
    slot = report_data + bytes(32) if slot is None else slot
    quote = QUOTES.build(CVM.measurements, slot, debug=debug)
    k256 = E2EE_KEY.public_key
    custody = [
        custody_entry(
            "receipt",
            "aci.receipt.ed25519.v1",
            "ed25519",
            hexkey(RECEIPT_KEY),
            coincurve.PrivateKey(bytes([2]) * 32).public_key.format().hex(),
            root=root,
        ),
        custody_entry(
            "e2ee-secp256k1",
            "aci.e2ee.v1",
            "secp256k1-aes-256-gcm-hkdf-sha256",
            k256.format(compressed=False).hex(),
            k256.format().hex(),
            root=root,
        ),
    ]
    return {
        "api_version": "aci/1",
        "workload_keyset_digest": digest or true_digest,
        "attestation": {
            "tee_type": "tdx",
            "workload_keyset": ks,
            "report_data": report_data.hex(),
            "source_provenance": {
                "repo_url": "https://github.com/Dstack-TEE/private-ai-gateway.git",
                "repo_commit": "30296dd9a0dbaf06e520f2ed1be01eab75c3c287",
                "image_digest": None,
                "image_provenance": None,
            },
            "evidence": {
                "quote": quote.hex(),
                "quote_report_data": slot.hex(),
                "event_log": json.dumps(list(CVM.event_log)),
                "vm_config": json.dumps({"os_image_hash": CVM.os_image_hash, "num_gpus": 0}),
                "app_compose": CVM.app_compose,
                "key_custody": {"provider": "dstack-kms", "keys": custody},
            },
        },
        "service_capabilities": {"supported_e2ee_versions": ["2"], "serving": "aggregator"},
    }


def report_bytes(**kwargs: Any) -> bytes:
    return json.dumps(report_dict(**kwargs)).encode()


def session_dict(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "api_version": "aci/1",
        "upstream_name": "phala-86",
        "endpoint": "https://upstream.example.com",
        "verifier_id": "private-ai-verifier/phala-direct/v1",
        "established_at": T - 600,
        "expires_at": T + 3000,
        "channel_binding": [],
        "claims": {"tee_attested": {"status": "asserted", "source": "hardware_proven"}},
        "evidence": {
            "digest": "sha256:" + hashlib.sha256(b"example-evidence").hexdigest(),
            "data": "data:text/plain;base64,ZXhhbXBsZS1ldmlkZW5jZQ==",
        },
    }
    doc.update(changes)
    return doc


def session_id(doc: dict[str, Any]) -> str:
    return hashlib.sha256(jcs(doc)).hexdigest()


def receipt_dict(
    *, upstream: dict[str, Any] | None = None, key: Ed25519PrivateKey | None = None, **changes: Any
) -> dict[str, Any]:
    if upstream is None:
        upstream = {
            "type": "upstream.verified",
            "result": "verified",
            "required": True,
            "model_id": "demo",
            "session_id": session_id(session_dict()),
        }
    doc: dict[str, Any] = {
        "api_version": "aci/1",
        "receipt_id": RECEIPT_ID,
        "chat_id": "chatcmpl-abc",
        "model": "phala/demo",
        "workload_keyset_digest": jcs_sha256(keyset()),
        "endpoint": "/v1/chat/completions",
        "method": "POST",
        "served_at": T,
        "event_log": [
            {"type": "request.received", "body_hash": _h(REQUEST)},
            {"type": "request.forwarded", "body_hash": _h(b"forwarded")},
            upstream,
            {"type": "response.returned", "body_hash": _h(RESPONSE)},
        ],
        "key_id": "receipt-1",
    }
    doc.update(changes)
    return sign(doc, key or RECEIPT_KEY)


def sign(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    return {**unsigned, "signature": key.sign(jcs(unsigned)).hex()}


def receipt_bytes(**kwargs: Any) -> bytes:
    return json.dumps(receipt_dict(**kwargs)).encode()


def _h(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def exchange(**changes: Any) -> AciExchange:
    values: dict[str, Any] = {
        "request_body": REQUEST,
        "response_body": RESPONSE,
        "receipt_id": RECEIPT_ID,
        "chat_id": "chatcmpl-abc",
        "endpoint": "/v1/chat/completions",
        "model": "phala/demo",
        "started_at": NOW,
        "finished_at": NOW,
        "sent_aci_constraint": True,
    }
    values.update(changes)
    return AciExchange(**values)


def replace_report(report: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(report))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out
