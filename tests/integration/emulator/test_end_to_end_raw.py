"""End to end against the emulator with raw httpx on loopback (no package wire layer)."""

from __future__ import annotations

import hashlib
import json
import struct
import time

import dcap_qvl
import httpx
import jwt
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from redpill_integrations.emulator import Emulator

from ._raw import chat, chat_body, client, quote_rtmrs, replay, report, report_data, signature


@pytest.mark.parametrize("stream", [False, True])
def test_chat_signature_binds_exact_bytes(emu: Emulator, stream: bool) -> None:
    body = chat_body(stream=stream)
    with client(emu) as c:
        chat_id, raw, resp = chat(c, body)
        assert resp.headers["x-redpill-emulator"] == "1"
        assert chat_id.startswith("chatcmpl-")
        if stream:
            assert raw.endswith(b"data: [DONE]\n\n")
            assert b'"usage":' in raw
        sig = signature(c, chat_id).json()
    assert set(sig) == {"text", "signature", "signing_address", "signing_algo"}
    req_hash, resp_hash = sig["text"].split(":")
    assert req_hash == hashlib.sha256(body).hexdigest()
    assert resp_hash == hashlib.sha256(raw).hexdigest()
    signer = Account.recover_message(encode_defunct(text=sig["text"]), signature=sig["signature"])
    assert signer == sig["signing_address"] == emu.signing_address


async def test_quote_verifies_with_collateral_from_emulator_pccs(emu: Emulator) -> None:
    with client(emu) as c:
        nonce, rep = report(c)
    quote = bytes.fromhex(rep["intel_quote"])
    collateral = await dcap_qvl.get_collateral(emu.trust.pccs_url, quote)
    verified = dcap_qvl.verify_with_root_ca(
        quote, collateral, emu.trust.intel_root_ca_der, int(time.time())
    )
    assert verified.status == "UpToDate"
    assert emu.stats.pccs_calls["/tdx/certification/v4/tcb"] == 1
    # the real Intel root rejects the emulator's quote
    with pytest.raises(ValueError, match="Verification failed"):
        dcap_qvl.verify(quote, collateral, int(time.time()))
    # report_data = signer address padded to 32 ‖ this request's nonce
    address = bytes.fromhex(emu.signing_address[2:])
    assert report_data(quote) == address.ljust(32, b"\0") + bytes.fromhex(nonce)
    assert rep["request_nonce"] == nonce
    assert rep["signing_address"] == emu.signing_address


def test_event_log_replays_and_binds_compose(emu: Emulator) -> None:
    with client(emu) as c:
        _, rep = report(c)
    quote = bytes.fromhex(rep["intel_quote"])
    assert replay(rep["event_log"]) == quote_rtmrs(quote)
    info = rep["info"]
    compose_hash = hashlib.sha256(info["tcb_info"]["app_compose"].encode()).hexdigest()
    runtime = {e["event"]: e for e in rep["event_log"] if e["imr"] == 3}
    assert runtime["compose-hash"]["event_payload"] == compose_hash == info["compose_hash"]
    assert runtime["app-id"]["event_payload"] == info["app_id"]
    for e in runtime.values():
        payload = bytes.fromhex(e["event_payload"])
        digest = hashlib.sha384(
            struct.pack("<I", 0x08000001) + b":" + e["event"].encode() + b":" + payload
        ).hexdigest()
        assert e["digest"] == digest
    assert quote[232:280] == b"\x01" + bytes.fromhex(compose_hash) + bytes(15)  # mr_config_id
    assert "emulator" in info["app_name"]


def test_gpu_tokens_verify_against_emulator_jwks(emu: Emulator) -> None:
    with client(emu) as c:
        nonce, rep = report(c)
    payload = json.loads(rep["nvidia_payload"])
    assert payload["nonce"] == nonce and set(payload) == {"nonce", "evidence_list", "arch"}
    trust = emu.trust
    answer = httpx.post(trust.nras_url, content=rep["nvidia_payload"]).json()
    jwks = jwt.PyJWKSet.from_dict(httpx.get(trust.nras_jwks_url).json())
    assert answer[0][0] == "JWT"

    def decode(token: str) -> dict[str, object]:
        key = jwks[jwt.get_unverified_header(token)["kid"]]
        return jwt.decode(token, key.key, algorithms=["ES384"], issuer=trust.nras_issuer)

    platform = decode(answer[0][1])
    assert platform["eat_nonce"] == nonce and platform["x-nvidia-overall-att-result"] is True
    assert set(platform["submods"]) == set(answer[1]) == {"GPU-0"}  # type: ignore[arg-type]
    for name, token in answer[1].items():
        digest = platform["submods"][name][1][1]  # type: ignore[index]
        assert digest == hashlib.sha256(token.encode()).hexdigest()
        claims = decode(token)
        assert claims["eat_nonce"] == nonce
        assert claims["measres"] == "success" and claims["dbgstat"] == "disabled"


def test_each_fetch_carries_its_own_nonce(emu: Emulator) -> None:
    with client(emu) as c:
        n1, r1 = report(c)
        n2, r2 = report(c)
    assert n1 != n2
    assert report_data(bytes.fromhex(r1["intel_quote"]))[32:].hex() == n1
    assert report_data(bytes.fromhex(r2["intel_quote"]))[32:].hex() == n2
    assert emu.stats.attestation_nonces == [n1, n2]
