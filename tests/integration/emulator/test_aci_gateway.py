"""The emulator in ACI mode serves what the protocol (generation B) says, checked independently."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import dcap_qvl
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from redpill_integrations.emulator import Emulator
from redpill_integrations.emulator.aci.receipts import ReceiptStore
from redpill_integrations.policy import TrustAnchors
from tests.integration.emulator._aci import (
    NON_TEE_MODEL,
    TEE_MODEL,
    chat_body,
    client,
    custody_roots,
    events,
    fresh_nonce,
    jcs,
    keyset_digest,
    post_chat,
    receipt_key,
    sha,
    signature_ok,
    statement,
)
from tests.support import FakeTime


def test_every_response_carries_the_aci_headers_and_the_probe_agrees(aci_emu: Emulator) -> None:
    with client(aci_emu) as c:
        probe = c.get("/")
        missing = c.get("/v1/aci/receipts/rcpt-" + "00" * 12)
        report = c.get("/v1/aci/attestation", params={"nonce": fresh_nonce()}).json()
    digest = keyset_digest(report)
    assert probe.json() == {"api_version": "aci/1", "workload_keyset_digest": digest}
    for r in (probe, missing):
        assert r.headers["x-aci-version"] == "aci/1"
        assert r.headers["x-aci-keyset-digest"] == digest
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize("nonce", ["ab" * 16, "AB" * 32, "zz" * 32])
def test_attestation_refuses_a_nonce_that_is_not_64_lowercase_hex(
    aci_emu: Emulator, nonce: str
) -> None:
    with client(aci_emu, token=None) as c:
        r = c.get("/v1/aci/attestation", params={"nonce": nonce})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


async def test_report_binds_the_keyset_and_nonce_into_a_quote_that_verifies(
    aci_emu: Emulator,
) -> None:
    nonce = fresh_nonce()
    with client(aci_emu, token=None) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": nonce}).json()
    assert report["api_version"] == "aci/1"
    att = report["attestation"]
    assert isinstance(att["workload_keyset"]["not_after"], int)
    digest = keyset_digest(report)
    assert report["workload_keyset_digest"] == digest == aci_emu.keyset_digest
    report_data = hashlib.sha256(statement(digest, nonce)).digest()
    assert att["report_data"] == report_data.hex()
    quote = bytes.fromhex(att["evidence"]["quote"])
    assert quote[568:632] == report_data + bytes(32)
    assert att["evidence"]["quote_report_data"] == quote[568:632].hex()
    collateral = await dcap_qvl.get_collateral(aci_emu.pccs_url, quote)
    verified = dcap_qvl.verify_with_root_ca(
        quote, collateral, aci_emu.root_ca_der, int(time.time())
    )
    assert verified.status == "UpToDate"
    with pytest.raises(ValueError):
        dcap_qvl.verify(quote, collateral, int(time.time()))  # never passes as Intel's


def test_absent_nonce_is_null_in_the_statement(aci_emu: Emulator) -> None:
    with client(aci_emu, token=None) as c:
        report = c.get("/v1/aci/attestation").json()
    expected = hashlib.sha256(statement(keyset_digest(report), None)).hexdigest()
    assert report["attestation"]["report_data"] == expected


def test_report_evidence_replays_and_chains_to_the_trust_file_anchors(aci_emu: Emulator) -> None:
    with client(aci_emu, token=None) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": fresh_nonce()}).json()
    ev = report["attestation"]["evidence"]
    quote = bytes.fromhex(ev["quote"])
    log = json.loads(ev["event_log"])
    mrs = [bytes(48)] * 4
    for e in log:
        if e["event_type"] == 0x08000001:
            assert (
                hashlib.sha384(
                    (0x08000001).to_bytes(4, "little")
                    + b":"
                    + e["event"].encode()
                    + b":"
                    + bytes.fromhex(e["event_payload"])
                ).hexdigest()
                == e["digest"]
            )
        mrs[e["imr"]] = hashlib.sha384(mrs[e["imr"]] + bytes.fromhex(e["digest"])).digest()
    assert [quote[376 + 48 * i : 424 + 48 * i] for i in range(4)] == mrs
    runtime = {e["event"]: e["event_payload"] for e in log if e["imr"] == 3}
    assert list(runtime)[:8] == [
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "mr-kms",
        "os-image-hash",
        "key-provider",
    ]
    assert list(runtime)[-1] == "system-ready"
    compose_hash = hashlib.sha256(ev["app_compose"].encode()).hexdigest()
    assert runtime["compose-hash"] == compose_hash
    assert quote[232:280] == b"\x01" + bytes.fromhex(compose_hash) + bytes(15)  # mr_config_id
    trust = aci_emu.trust_dict()
    assert runtime["app-id"] in trust["aci_app_ids"]
    os_hash = json.loads(ev["vm_config"])["os_image_hash"]
    assert runtime["os-image-hash"] == os_hash
    image = trust["os_images"][os_hash]
    assert image["mrtd"] == quote[184:232].hex()
    assert (image["rtmr1"], image["rtmr2"]) == (mrs[1].hex(), mrs[2].hex())
    commit = report["attestation"]["source_provenance"]["repo_commit"]
    compose = json.loads(ev["app_compose"])["docker_compose_file"]
    assert f"PRIVATE_AI_GATEWAY_REPO_COMMIT: {commit}" in compose
    assert custody_roots(report, runtime["app-id"]) == set(trust["kms_root_pubkeys"])
    custody = {k["role"]: k for k in ev["key_custody"]["keys"]}
    receipt_keys = report["attestation"]["workload_keyset"]["receipt_signing_keys"]
    assert custody["receipt"]["public_key"] == receipt_keys[0]["public_key"]


def test_trust_file_carries_the_aci_anchors_and_still_loads(aci_emu: Emulator, tmp_path) -> None:
    path = aci_emu.write_trust_file(tmp_path / "trust.json")
    data = json.loads(path.read_text())
    assert len(data["kms_root_pubkeys"]) == 1 and len(data["kms_root_pubkeys"][0]) == 66
    assert len(bytes.fromhex(data["aci_app_ids"][0])) == 20
    assert set(next(iter(data["os_images"].values()))) == {
        "name",
        "mrtd",
        "rtmr1",
        "rtmr2",
        "source",
    }
    anchors = TrustAnchors.from_file(path)
    assert anchors.kind == "redpill-emulator" and anchors.base_url == aci_emu.base_url


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_receipt_signs_the_exact_bytes_sent_and_received(aci_emu: Emulator, stream: bool) -> None:
    body = chat_body(stream=stream)
    with client(aci_emu) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": fresh_nonce()}).json()
        r = post_chat(c, body)
        received = r.content
        rid = r.headers["x-receipt-id"]
        fetched = c.get(f"/v1/aci/receipts/{rid}")
    assert r.status_code == 200 and rid.startswith("rcpt-") and len(rid) == 29
    assert r.headers["x-aci-keyset-digest"] == keyset_digest(report)
    assert fetched.status_code == 200
    receipt = json.loads(fetched.content)
    assert fetched.content == jcs(receipt)  # served in canonical form
    keyset = report["attestation"]["workload_keyset"]
    key = receipt_key(keyset, receipt["key_id"])
    assert key is not None and signature_ok(receipt, key)
    assert receipt["workload_keyset_digest"] == keyset_digest(report)
    assert [e["type"] for e in receipt["event_log"]] == [
        "request.received",
        "request.forwarded",
        "upstream.verified",
        "response.received",
        "response.returned",
    ]
    assert events(receipt, "request.received")[0]["body_hash"] == sha(body)
    assert events(receipt, "response.returned")[0]["body_hash"] == sha(received)
    if stream:
        assert received.endswith(b"data: [DONE]\n\n")
        chat_id = json.loads(received.split(b"\n")[0][len(b"data: ") :])["id"]
    else:
        chat_id = json.loads(received)["id"]
    assert receipt["chat_id"] == chat_id
    assert (receipt["receipt_id"], receipt["model"]) == (rid, TEE_MODEL)
    assert (receipt["endpoint"], receipt["method"]) == ("/v1/chat/completions", "POST")
    assert abs(receipt["served_at"] - time.time()) < 60
    upstream = events(receipt, "upstream.verified")[0]
    assert (upstream["result"], upstream["required"]) == ("verified", False)
    assert len(upstream["session_id"]) == 64


def test_receipt_owner_check(aci_emu: Emulator) -> None:
    with client(aci_emu, token="owner-token") as c:
        rid = post_chat(c, chat_body()).headers["x-receipt-id"]
        by_chat_id = c.get(f"/v1/aci/receipts/{rid}")
    with client(aci_emu, token=None) as anon:
        assert anon.get(f"/v1/aci/receipts/{rid}").status_code == 401
    with client(aci_emu, token="someone-else") as other:
        wrong = other.get(f"/v1/aci/receipts/{rid}")
    assert wrong.status_code == 404 and wrong.json()["error"]["type"] == "not_found"
    assert by_chat_id.status_code == 200
    chat_id = by_chat_id.json()["chat_id"]
    with client(aci_emu, token="owner-token") as c:
        assert c.get(f"/v1/aci/receipts/{chat_id}").json()["receipt_id"] == rid


def test_receipts_expire_after_their_ttl(emulator_factory) -> None:
    emu = emulator_factory(seed="aci-ttl", protocol="aci", receipt_ttl=0.5)
    # a fake clock drives expiry: on real time a loaded machine's first lookup came too late
    fake = FakeTime(start=1024.0)  # binary fractions: exact boundaries
    emu.state.receipts = ReceiptStore(clock=fake.monotonic)
    with client(emu) as c:
        rid = post_chat(c, chat_body()).headers["x-receipt-id"]
        fake.sleep(0.375)
        assert c.get(f"/v1/aci/receipts/{rid}").status_code == 200
        fake.sleep(0.125)  # gone exactly at the TTL
        assert c.get(f"/v1/aci/receipts/{rid}").status_code == 404


def test_non_tee_model_is_served_with_a_failed_not_required_upstream(aci_emu: Emulator) -> None:
    with client(aci_emu) as c:
        r = post_chat(c, chat_body(model=NON_TEE_MODEL))
        receipt = c.get(f"/v1/aci/receipts/{r.headers['x-receipt-id']}").json()
    assert r.status_code == 200
    upstream = events(receipt, "upstream.verified")[0]
    assert (upstream["result"], upstream["required"]) == ("failed", False)
    assert "session_id" not in upstream and upstream["reason"]


def test_aci_verified_constraint_refuses_a_non_tee_model_with_a_signed_receipt(
    aci_emu: Emulator,
) -> None:
    body = chat_body(model=NON_TEE_MODEL, provider={"aci_verified": True})
    with client(aci_emu) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": fresh_nonce()}).json()
        r = post_chat(c, body)
        receipt = c.get(f"/v1/aci/receipts/{r.headers['x-receipt-id']}").json()
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "upstream_verification_failed"
    key = receipt_key(report["attestation"]["workload_keyset"], receipt["key_id"])
    assert key is not None and signature_ok(receipt, key)
    assert [e["type"] for e in receipt["event_log"]] == [
        "request.received",
        "upstream.verified",
        "response.returned",
    ]
    upstream = events(receipt, "upstream.verified")[0]
    assert (upstream["result"], upstream["required"]) == ("failed", True)
    assert events(receipt, "request.received")[0]["body_hash"] == sha(body)
    assert events(receipt, "response.returned")[0]["body_hash"] == sha(r.content)
    assert receipt["chat_id"] is None


def test_constraint_on_a_tee_model_is_required_and_not_forwarded(aci_emu: Emulator) -> None:
    body = chat_body(provider={"aci_verified": True})
    with client(aci_emu) as c:
        r = post_chat(c, body)
        receipt = c.get(f"/v1/aci/receipts/{r.headers['x-receipt-id']}").json()
    upstream = events(receipt, "upstream.verified")[0]
    assert (upstream["result"], upstream["required"]) == ("verified", True)
    forwarded = {k: v for k, v in json.loads(body).items() if k != "provider"}
    assert events(receipt, "request.forwarded")[0]["body_hash"] == sha(
        json.dumps(forwarded, separators=(",", ":"), ensure_ascii=False).encode()
    )


@pytest.mark.parametrize(
    "provider",
    [
        {"aci_verified": True, "aci_unknown": 1},
        {"aci_verified": False, "aci_session_ids": ["00" * 32]},
        {"aci_session_ids": []},
        {"aci_verified": "yes"},
    ],
)
def test_malformed_constraints_are_refused_without_a_receipt(
    aci_emu: Emulator, provider: dict[str, object]
) -> None:
    with client(aci_emu) as c:
        r = post_chat(c, chat_body(provider=provider))
    assert r.status_code == 400 and "x-receipt-id" not in r.headers


def test_pinned_sessions_not_current_are_refused_with_412(aci_emu: Emulator) -> None:
    with client(aci_emu) as c:
        r = post_chat(c, chat_body(provider={"aci_session_ids": ["ab" * 32]}))
        receipt = c.get(f"/v1/aci/receipts/{r.headers['x-receipt-id']}").json()
        ok = post_chat(c, chat_body())
        sid = events(
            c.get(f"/v1/aci/receipts/{ok.headers['x-receipt-id']}").json(), "upstream.verified"
        )[0]["session_id"]
        pinned = post_chat(c, chat_body(provider={"aci_session_ids": [sid]}))
    assert r.status_code == 412 and r.json()["error"]["type"] == "session_not_accepted"
    assert events(receipt, "upstream.verified")[0]["result"] == "failed"
    assert pinned.status_code == 200


@pytest.mark.parametrize(
    ("model", "verifier", "has_evidence"),
    [
        ("phala/gpt-oss-120b", "private-ai-verifier/phala-direct/v1", True),
        ("phala/deepseek-r1-70b", "private-ai-verifier/near-ai-gateway/v1", True),
        ("phala/qwen-2.5-7b-instruct", "private-ai-verifier/chutes/v1", False),
    ],
)
def test_sessions_recompute_for_each_upstream_kind(
    aci_emu: Emulator, model: str, verifier: str, has_evidence: bool
) -> None:
    with client(aci_emu) as c:
        r = post_chat(c, chat_body(model=model))
        receipt = c.get(f"/v1/aci/receipts/{r.headers['x-receipt-id']}").json()
        sid = events(receipt, "upstream.verified")[0]["session_id"]
        raw = c.get(f"/v1/aci/sessions/{sid}").content
        listing = c.get("/v1/aci/sessions", params={"model": model}).json()
    assert hashlib.sha256(raw).hexdigest() == sid
    doc = json.loads(raw)
    assert hashlib.sha256(jcs(doc)).hexdigest() == sid
    assert doc["verifier_id"] == verifier
    assert doc["established_at"] <= receipt["served_at"] < doc["expires_at"]
    assert doc["claims"]["tee_attested"] == {"status": "asserted", "source": "hardware_proven"}
    entry = next(e for e in listing["sessions"] if e["session_id"] == sid)
    assert "data" not in entry["evidence"]
    if not has_evidence:
        assert doc["evidence"] == {}
        return
    data = base64.b64decode(doc["evidence"]["data"].split(";base64,", 1)[1])
    assert doc["evidence"]["digest"] == sha(data)
    evidence = json.loads(data)
    if "near" in verifier:
        assert {"gateway_attestation", "model_attestations"} <= set(evidence)
    else:
        assert evidence["signing_address"] == doc["identity"]["signing_address"]
        assert "intel_quote" in evidence


def test_models_list_is_tee_per_model(aci_emu: Emulator) -> None:
    with client(aci_emu) as c:
        data = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
    assert data[TEE_MODEL]["is_tee"] is True and data[NON_TEE_MODEL]["is_tee"] is False
    assert {m["upstream"] for m in data.values()} == {"phala-direct", "near-ai", "chutes", "none"}


def test_legacy_signature_alias_signs_both_hashes_with_the_keyset_e2ee_key(
    aci_emu: Emulator,
) -> None:
    body = chat_body()
    with client(aci_emu) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": fresh_nonce()}).json()
        r = post_chat(c, body)
        chat_id = r.json()["id"]
        sig = c.get(f"/v1/signature/{chat_id}").json()
        by_receipt = c.get(f"/v1/signature/{r.headers['x-receipt-id']}")
        bad_algo = c.get(f"/v1/signature/{chat_id}", params={"signing_algo": "rsa"})
    assert (
        sig["text"] == f"{hashlib.sha256(body).hexdigest()}:{hashlib.sha256(r.content).hexdigest()}"
    )
    assert sig["signature"].startswith("0x") and sig["signing_algo"] == "ecdsa"
    signer = Account.recover_message(encode_defunct(text=sig["text"]), signature=sig["signature"])
    assert signer.lower() == sig["signing_address"] and sig["signing_address"].islower()
    k1 = next(
        k
        for k in report["attestation"]["workload_keyset"]["e2ee_public_keys"]
        if k["algo"] == "secp256k1-aes-256-gcm-hkdf-sha256"
    )
    from eth_hash.auto import keccak

    address = "0x" + keccak(bytes.fromhex(k1["public_key"])[1:])[-20:].hex()
    assert sig["signing_address"] == address
    assert sig["receipt"]["receipt_id"] == r.headers["x-receipt-id"]
    assert by_receipt.status_code == 200
    assert (
        bad_algo.status_code == 400 and bad_algo.json()["error"]["type"] == "invalid_signing_algo"
    )


def test_legacy_report_alias_is_the_gateway_report_over_address_and_nonce(
    aci_emu: Emulator,
) -> None:
    nonce = fresh_nonce()
    with client(aci_emu) as c:
        a = c.get("/v1/attestation/report", params={"model": TEE_MODEL, "nonce": nonce}).json()
        b = c.get(
            "/v1/attestation/report", params={"model": "no/such-model", "nonce": nonce}
        ).json()
        chutes = c.get("/v1/attestation/report", params={"model": "phala/qwen-2.5-7b-instruct"})
    for report in (a, b):
        quote = bytes.fromhex(report["intel_quote"])
        address = bytes.fromhex(report["signing_address"][2:])
        assert quote[568:632] == address.ljust(32, b"\0") + bytes.fromhex(nonce)
        assert report["attestation"]["report_data"] == quote[568:632].hex()
        assert "info" not in report and "event_log" not in report
        assert json.loads(report["attestation"]["evidence"]["event_log"])
        assert report["all_attestations"][0]["signing_address"] == report["signing_address"]
    assert chutes.json()["attestation_type"] == "chutes"
