"""Constructor switches: signing algorithm, signed-text form, report shapes, TCB, debug TD, ..."""

from __future__ import annotations

import gzip
import hashlib
import json
import time

import dcap_qvl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redpill_integrations.emulator import Emulator, Reply
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.policy import TrustAnchors

from ._raw import chat, chat_body, client, report, report_data, signature


def test_ed25519_and_three_part_text(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(signing_algo="ed25519", signed_text_parts=3, protocol="legacy")
    body = chat_body(stream=True)
    with client(emu) as c:
        chat_id, raw, _ = chat(c, body)
        sig = signature(c, chat_id, algo="ed25519").json()
        nonce, rep = report(c, algo="ed25519")
    model, req, resp = sig["text"].split(":")
    assert model == "openai/gpt-oss-120b"  # the proxy's served name, not the alias
    assert (req, resp) == (hashlib.sha256(body).hexdigest(), hashlib.sha256(raw).hexdigest())
    assert sig["signing_algo"] == "ed25519" and sig["signing_address"] == emu.signing_address
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["signing_address"])).verify(
        bytes.fromhex(sig["signature"]), sig["text"].encode()
    )
    key = bytes.fromhex(emu.signing_address)
    assert report_data(bytes.fromhex(rep["intel_quote"])) == key + bytes.fromhex(nonce)


def test_tls_bound_report_data(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(tls_bound=True, protocol="legacy")
    with client(emu) as c:
        nonce, rep = report(c)
    address = bytes.fromhex(emu.signing_address[2:])
    fingerprint = bytes.fromhex(rep["tls_cert_fingerprint"])
    expected = hashlib.sha256(address + fingerprint).digest() + bytes.fromhex(nonce)
    assert report_data(bytes.fromhex(rep["intel_quote"])) == expected


def test_two_layer_shape(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(report_shape="two-layer", protocol="legacy")
    with client(emu) as c:
        nonce, rep = report(c)
    assert set(rep) == {"gateway_attestation", "model_attestations"}
    gateway, model = rep["gateway_attestation"], rep["model_attestations"][0]
    assert gateway["signing_address"] != model["signing_address"] == emu.signing_address
    for node in (gateway, model):
        assert report_data(bytes.fromhex(node["intel_quote"]))[32:].hex() == nonce
    assert "nvidia_payload" in model and "nvidia_payload" not in gateway


@pytest.mark.parametrize("status", ["OutOfDate", "SWHardeningNeeded", "Revoked"])
async def test_tcb_status_switch(emulator_factory, status: str) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(tcb_status=status, protocol="legacy")
    with client(emu) as c:
        _, rep = report(c)
    quote = bytes.fromhex(rep["intel_quote"])
    collateral = await dcap_qvl.get_collateral(emu.pccs_url, quote)
    if status == "Revoked":
        with pytest.raises(ValueError, match="Revoked"):
            dcap_qvl.verify_with_root_ca(quote, collateral, emu.root_ca_der, int(time.time()))
    else:
        verified = dcap_qvl.verify_with_root_ca(
            quote, collateral, emu.root_ca_der, int(time.time())
        )
        assert verified.status == status


async def test_debug_td_is_rejected(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(debug_td=True, protocol="legacy")
    with client(emu) as c:
        _, rep = report(c)
    quote = bytes.fromhex(rep["intel_quote"])
    collateral = await dcap_qvl.get_collateral(emu.pccs_url, quote)
    with pytest.raises(ValueError, match="Debug mode is enabled"):
        dcap_qvl.verify_with_root_ca(quote, collateral, emu.root_ca_der, int(time.time()))


def test_scripted_replies_json_and_sse(emu: Emulator) -> None:
    emu.script(
        replies=[
            Reply.tool_call("get_weather", {"city": "Paris"}),
            Reply.text("ok", reasoning="thinking"),
        ]
    )
    emu.script("phala/qwen-2.5-7b-instruct", [Reply.json({"a": 1})])
    with client(emu) as c:
        _, raw, _ = chat(c, chat_body(stream=False))
        message = json.loads(raw)["choices"][0]
        assert message["finish_reason"] == "tool_calls"
        call = message["message"]["tool_calls"][0]["function"]
        assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
        _, raw, _ = chat(c, chat_body(stream=True))
        assert b'"reasoning_content":"thinking"' in raw and b'"content":"ok"' in raw
        _, raw, _ = chat(c, chat_body(stream=False, model="phala/qwen-2.5-7b-instruct"))
        assert json.loads(json.loads(raw)["choices"][0]["message"]["content"]) == {"a": 1}
        _, raw, _ = chat(c, chat_body(stream=False, text="echo me"))
        assert "echo me" in json.loads(raw)["choices"][0]["message"]["content"]


def test_chat_ids_with_path_characters(emu: Emulator) -> None:
    with client(emu) as c:
        for weird in ("../../etc/passwd", "a%2Fb", "x/y?z"):
            r = c.get(f"/signature/{weird}")
            assert r.status_code == 404


def test_auth_models_and_gzip(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(gzip=True, protocol="legacy")
    with client(emu) as c:
        assert c.get("/models", headers={"Authorization": ""}).status_code == 401
        ids = {m["id"] for m in c.get("/models").json()["data"]}
        assert {"phala/deepseek-chat-v3-0324", "openai/gpt-4o-mini"} <= ids
        body = chat_body(stream=False)
        _, identity_raw, r = chat(c, body)
        assert "content-encoding" not in r.headers
        zipped = c.post(
            "/chat/completions",
            content=body,
            headers={"Accept-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert zipped.headers["content-encoding"] == "gzip"
        plain = (
            gzip.decompress(zipped.read())
            if zipped.content[:2] == b"\x1f\x8b"
            else (zipped.content)
        )  # httpx decodes gzip itself
        sig = signature(c, json.loads(plain)["id"]).json()
    assert sig["text"].split(":")[1] == hashlib.sha256(plain).hexdigest()  # over decoded bytes
    assert identity_raw.startswith(b"{")


def test_trust_file_and_loopback_only(emu: Emulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = emu.write_trust_file(tmp_path / "trust.json")
    data = json.loads(path.read_text())
    assert set(data) == {
        "kind",
        "intel_root_ca_der_b64",
        "pccs_url",
        "nras_url",
        "nras_jwks_url",
        "base_url",
        "nras_ca_certs_der_b64",
        "kms_root_pubkeys",
        "aci_app_ids",
        "os_images",
    }
    assert data["kind"] == "redpill-emulator" and data["base_url"] == emu.base_url
    loaded = TrustAnchors.from_file(path)
    assert loaded.intel_root_ca_der == emu.root_ca_der and loaded.nras_issuer == emu.origin
    # the emulator's own test NRAS CA is pinned, never NVIDIA's
    assert loaded.nras_ca_certs_der == emu.trust.nras_ca_certs_der
    assert loaded.nras_ca_certs_der != TrustAnchors.production().nras_ca_certs_der
    with pytest.raises(ConfigurationError, match="loopback"):
        Emulator(host="0.0.0.0")
