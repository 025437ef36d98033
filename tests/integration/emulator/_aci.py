"""Independent ACI checks for the emulator tests, written from the protocol (generation B): httpx,
hashlib, coincurve and cryptography only; nothing from the emulator or the package's verifier."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx
from coincurve import PublicKey
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_hash.auto import keccak

from redpill_integrations.emulator import Emulator

TEE_MODEL = "phala/gpt-oss-120b"
NON_TEE_MODEL = "openai/gpt-4o-mini"


def jcs(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def client(emu: Emulator, token: str | None = "sk-aci-test", **headers: str) -> httpx.Client:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=emu.origin,
        timeout=10,
        headers={**auth, "Accept-Encoding": "identity", **headers},
    )


def chat_body(*, stream: bool = False, model: str = TEE_MODEL, **extra: Any) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "héllo"}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    # deliberately not canonical (indent, \\u escapes): the hash is over the exact bytes sent
    return json.dumps(body, indent=1).encode()


def post_chat(c: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return c.post(
        "/v1/chat/completions",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def statement(digest: str, nonce: str | None) -> bytes:
    n = "null" if nonce is None else '"' + nonce + '"'
    return (
        '{"keyset_digest":"' + digest + '","nonce":' + n + ',"purpose":"aci.report_data.v1"}'
    ).encode()


def fresh_nonce() -> str:
    return os.urandom(32).hex()


def keyset_digest(report: dict[str, Any]) -> str:
    return sha(jcs(report["attestation"]["workload_keyset"]))


def receipt_key(keyset: dict[str, Any], key_id: str) -> bytes | None:
    for k in keyset["receipt_signing_keys"]:
        if k["key_id"] == key_id and k["algo"] == "ed25519":
            return bytes.fromhex(k["public_key"])
    return None


def signature_ok(receipt: dict[str, Any], public: bytes) -> bool:
    unsigned = {k: v for k, v in receipt.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            bytes.fromhex(receipt["signature"]), jcs(unsigned)
        )
    except InvalidSignature:
        return False
    return True


def events(receipt: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in receipt["event_log"] if e["type"] == kind]


def recover(message: bytes, sig_hex: str) -> str:
    return (
        PublicKey.from_signature_and_message(bytes.fromhex(sig_hex), keccak(message), hasher=None)
        .format()
        .hex()
    )


def custody_roots(report: dict[str, Any], app_id: str) -> set[str]:
    roots = set()
    for entry in report["attestation"]["evidence"]["key_custody"]["keys"]:
        sig0, sig1 = entry["signature_chain"]
        app_pub = recover(f"{entry['purpose']}:{entry['kms_public_key']}".encode(), sig0)
        roots.add(
            recover(b"dstack-kms-issued:" + bytes.fromhex(app_id) + bytes.fromhex(app_pub), sig1)
        )
    return roots
