"""The ACI emulator's building blocks, checked offline against published vectors and the protocol
(canonical JSON, statement bytes, custody chains, RTMR replay, receipt signatures)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from coincurve import PublicKey
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from eth_hash.auto import keccak

from redpill_integrations.emulator.aci.gateway import AciGateway
from redpill_integrations.emulator.aci.identity import TEST_OS_IMAGE
from redpill_integrations.emulator.aci.jcs import canonical
from redpill_integrations.emulator.aci.kms import AciKeys
from redpill_integrations.emulator.aci.receipts import (
    FOREIGN_KEY_ID,
    ReceiptStore,
    StoredReceipt,
    sign_receipt,
)
from redpill_integrations.emulator.aci.report import statement
from redpill_integrations.emulator.faults import Faults

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "aci"
SEED = hashlib.sha256(b"aci-offline").digest()


def _jcs_vectors() -> list[dict[str, object]]:
    data = json.loads((VECTORS / "looprig_jcs_vectors.json").read_text(encoding="utf-8"))
    return list(data["vectors"])


@pytest.mark.parametrize("vector", _jcs_vectors(), ids=lambda v: str(v["name"]))
def test_canonical_json_matches_the_reference_canonicalizer(vector: dict[str, object]) -> None:
    if vector["wantErr"] or vector["name"] == "utf16_key_sort_surrogate":
        # floats are refused; generation B refuses non-ASCII member names outright
        with pytest.raises(TypeError):
            canonical(vector["value"])
        return
    assert canonical(vector["value"]).hex() == vector["canonical_hex"]


def test_canonical_json_keeps_integers_beyond_2_pow_53_verbatim() -> None:
    assert canonical({"not_after": 2**64 - 1}) == b'{"not_after":18446744073709551615}'


def test_keyset_digest_and_statement_match_the_published_vector() -> None:
    raw = (VECTORS / "pag_spec_keyset_53a5cd44.derived.json").read_bytes()
    assert canonical(json.loads(raw)) == raw
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert digest.endswith("53a5cd44b30dcc51999754c719f2628a041f174ecbf9662a6f8e898a10cd9371")
    nonce = bytes(range(32)).hex()
    assert hashlib.sha256(statement(digest, nonce)).hexdigest() == (
        "df2174d28130852b413646a3786927b93e94c11d770268b65def8bdba45cb49e"
    )
    assert hashlib.sha256(statement(digest, None)).hexdigest() == (
        "0633919ca3f00e97bafaa3304278eb22420cc3ff0d19f87dfca2d3f7508150bc"
    )


def test_receipt_signing_reproduces_the_published_receipt() -> None:
    doc = json.loads((VECTORS / "pag_spec_receipt_rcpt-0001.derived.json").read_bytes())
    key = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    assert key.sign(canonical(unsigned)).hex() == doc["signature"]


def _recover(message: bytes, sig_hex: str) -> bytes:
    sig = bytes.fromhex(sig_hex)
    assert len(sig) == 65 and sig[64] in (0, 1)
    return PublicKey.from_signature_and_message(sig, keccak(message), hasher=None).format()


def test_custody_chains_recover_to_the_kms_root_for_the_app_id() -> None:
    gw = AciGateway(SEED, tls_spki_sha256=b"\x11" * 32)
    custody = gw.keys.custody(gw.kms)
    assert custody["provider"] == "dstack-kms"
    roles = {k["role"]: k for k in custody["keys"]}
    assert set(roles) == {"receipt", "e2ee-secp256k1", "e2ee-x25519"}
    root = gw.trust_entries()["kms_root_pubkeys"][0]
    app_id = bytes.fromhex(gw.trust_entries()["aci_app_ids"][0])
    assert len(app_id) == 20
    for entry in custody["keys"]:
        sig0, sig1 = entry["signature_chain"]
        msg0 = f"{entry['purpose']}:{entry['kms_public_key']}".encode()
        app_pub = _recover(msg0, sig0)
        assert _recover(b"dstack-kms-issued:" + app_id + app_pub, sig1).hex() == root
    k1 = roles["e2ee-secp256k1"]
    assert PublicKey(bytes.fromhex(k1["public_key"])).format().hex() == k1["kms_public_key"]
    receipt_keys = [k["public_key"] for k in gw.keyset()["receipt_signing_keys"]]
    assert roles["receipt"]["public_key"] in receipt_keys


def test_rogue_custody_chain_recovers_to_another_root() -> None:
    gw = AciGateway(SEED, tls_spki_sha256=b"\x11" * 32)
    entry = gw.keys.custody(gw.kms, rogue=True)["keys"][0]
    sig0, sig1 = entry["signature_chain"]
    app_pub = _recover(f"{entry['purpose']}:{entry['kms_public_key']}".encode(), sig0)
    recovered = _recover(b"dstack-kms-issued:" + gw.kms.app_id + app_pub, sig1).hex()
    assert recovered != gw.kms.root_pubkey_hex


def test_keys_are_deterministic_per_seed_and_rotation_changes_the_digest() -> None:
    a = AciGateway(SEED, tls_spki_sha256=b"\x11" * 32)
    b = AciGateway(SEED, tls_spki_sha256=b"\x11" * 32)
    assert a.keyset()["receipt_signing_keys"] == b.keyset()["receipt_signing_keys"]
    assert a.trust_entries() == b.trust_entries()
    before = a.keyset_digest()
    a.rotate()
    assert a.keyset_digest() != before
    assert a.keyset()["receipt_signing_keys"] != b.keyset()["receipt_signing_keys"]


def test_expired_keyset_is_expired_and_stable_across_seconds() -> None:
    now = [1_800_000_000.0]
    gw = AciGateway(SEED, tls_spki_sha256=b"\x11" * 32, clock=lambda: now[0])
    digest = gw.keyset_digest(expired=True)
    now[0] += 1.5  # report, chat and receipt may fall in different seconds
    assert gw.keyset_digest(expired=True) == digest != gw.keyset_digest()
    assert gw.keyset(expired=True)["not_after"] < now[0] - 60


def test_cvm_event_log_replays_and_binds_compose_app_id_and_os_image() -> None:
    gw = AciGateway(SEED, tls_spki_sha256=b"\x11" * 32)
    cvm = gw.cvm
    mrs = [bytes(48)] * 4
    for e in cvm.event_log:
        if e["event_type"] == 0x08000001:
            recomputed = hashlib.sha384(
                (0x08000001).to_bytes(4, "little")
                + b":"
                + e["event"].encode()
                + b":"
                + bytes.fromhex(e["event_payload"])
            ).hexdigest()
            assert recomputed == e["digest"]
        mrs[e["imr"]] = hashlib.sha384(mrs[e["imr"]] + bytes.fromhex(e["digest"])).digest()
    assert tuple(mrs) == cvm.measurements.rtmrs
    runtime = {e["event"]: e["event_payload"] for e in cvm.event_log if e["imr"] == 3}
    assert list(runtime) == [
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "mr-kms",
        "os-image-hash",
        "key-provider",
        "storage-fs",
        "system-ready",
    ]
    compose_hash = hashlib.sha256(cvm.app_compose.encode()).hexdigest()
    assert runtime["compose-hash"] == compose_hash
    assert cvm.measurements.mr_config_id == b"\x01" + bytes.fromhex(compose_hash) + bytes(15)
    assert runtime["app-id"] == gw.kms.app_id.hex()
    assert runtime["os-image-hash"] == json.loads(cvm.vm_config)["os_image_hash"]
    assert runtime["os-image-hash"] == TEST_OS_IMAGE.os_image_hash
    assert (
        f"PRIVATE_AI_GATEWAY_REPO_COMMIT: {cvm.repo_commit}"
        in json.loads(cvm.app_compose)["docker_compose_file"]
    )
    image = gw.trust_entries()["os_images"][TEST_OS_IMAGE.os_image_hash]
    assert image["mrtd"] == cvm.measurements.mr_td.hex()
    assert (image["rtmr1"], image["rtmr2"]) == (mrs[1].hex(), mrs[2].hex())


def _doc() -> dict[str, object]:
    return {
        "api_version": "aci/1",
        "receipt_id": "rcpt-" + "ab" * 12,
        "chat_id": "chatcmpl-1",
        "model": "m",
        "workload_keyset_digest": "sha256:" + "00" * 32,
        "endpoint": "/v1/chat/completions",
        "method": "POST",
        "served_at": 1_800_000_000,
        "event_log": [
            {"type": "request.received", "body_hash": "sha256:" + "11" * 32},
            {"type": "response.returned", "body_hash": "sha256:" + "22" * 32},
        ],
    }


def _verifies(doc: dict[str, object], public: bytes) -> bool:
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(
            bytes.fromhex(str(doc["signature"])), canonical(unsigned)
        )
    except InvalidSignature:
        return False
    return True


def test_receipt_signature_and_its_faults() -> None:
    keys = AciKeys(SEED, 0)
    good = sign_receipt(_doc(), keys, Faults())
    assert good["key_id"] == "dstack-kms-receipt-ed25519-v1"
    assert _verifies(good, keys.receipt_public)
    assert not _verifies(
        sign_receipt(_doc(), keys, Faults(receipt_bad_signature=True)), keys.receipt_public
    )
    foreign = sign_receipt(_doc(), keys, Faults(receipt_foreign_key=True))
    assert foreign["key_id"] == FOREIGN_KEY_ID
    assert not _verifies(foreign, keys.receipt_public)
    tampered = sign_receipt(_doc(), keys, Faults(receipt_body_hash="response"))
    assert _verifies(tampered, keys.receipt_public)
    assert tampered["event_log"][1]["body_hash"] != _doc()["event_log"][1]["body_hash"]  # type: ignore[index]
    stale = sign_receipt(_doc(), keys, Faults(stale_served_at=True))
    assert stale["served_at"] == 1_800_000_000 - 3600


def test_receipt_store_expires_and_resolves_chat_ids() -> None:
    now = [100.0]
    store = ReceiptStore(clock=lambda: now[0])
    rec = StoredReceipt(
        receipt_id="rcpt-1",
        chat_id="chatcmpl-1",
        owner=None,
        doc=_doc(),
        stored_at=100.0,
        ttl=10.0,
        ready_after=100.0,
        faults=None,
    )
    store.put(rec)
    assert store.get("rcpt-1") is rec and store.get("chatcmpl-1", chat_first=True) is rec
    now[0] = 110.0
    assert store.get("rcpt-1") is None
    assert store.get("chatcmpl-1", chat_first=True) is None


def test_receipt_store_is_bounded() -> None:
    store = ReceiptStore(max_entries=2)
    for i in range(3):
        store.put(
            StoredReceipt(
                receipt_id=f"rcpt-{i}",
                chat_id=f"chat-{i}",
                owner=None,
                doc=_doc(),
                stored_at=store.now(),
                ttl=60.0,
                ready_after=0.0,
                faults=None,
            )
        )
    assert store.get("rcpt-0") is None and store.get("chat-0") is None
    assert store.get("chat-2", chat_first=True) is not None
