"""Attestation and GPU faults: each one is produced as documented."""

from __future__ import annotations

import hashlib
import json

import httpx
import jwt
import pytest

from redpill_integrations.emulator import Emulator, Faults

from ._raw import client, quote_rtmrs, replay, report, report_data


def _faulted_report(emu: Emulator, faults: Faults) -> tuple[str, dict[str, object]]:
    with client(emu) as c:
        return report(c, **{"X-Emulator-Faults": faults.to_header()})


def test_ignore_nonce_serves_a_stale_report(emu: Emulator) -> None:
    nonce, rep = _faulted_report(emu, Faults(ignore_nonce=True))
    quote = bytes.fromhex(str(rep["intel_quote"]))
    assert rep["request_nonce"] != nonce
    assert report_data(quote)[32:].hex() == rep["request_nonce"]
    assert json.loads(str(rep["nvidia_payload"]))["nonce"] != nonce


def test_compose_mismatch(emu: Emulator) -> None:
    _, rep = _faulted_report(emu, Faults(compose_mismatch=True))
    info = rep["info"]
    assert isinstance(info, dict)
    events = {e["event"]: e for e in rep["event_log"] if e["imr"] == 3}  # type: ignore[attr-defined]
    actual = hashlib.sha256(info["tcb_info"]["app_compose"].encode()).hexdigest()
    assert actual != events["compose-hash"]["event_payload"]
    # the event log itself still replays: only the compose document disagrees
    assert replay(rep["event_log"]) == quote_rtmrs(bytes.fromhex(str(rep["intel_quote"])))  # type: ignore[arg-type]


def test_rtmr_mismatch(emu: Emulator) -> None:
    _, rep = _faulted_report(emu, Faults(rtmr_mismatch=True))
    rtmrs = quote_rtmrs(bytes.fromhex(str(rep["intel_quote"])))
    replayed = replay(rep["event_log"])  # type: ignore[arg-type]
    assert replayed[:3] == rtmrs[:3] and replayed[3] != rtmrs[3]


def test_unknown_report_shape(emu: Emulator) -> None:
    _, rep = _faulted_report(emu, Faults(unknown_report_shape=True))
    assert rep["attestation_type"] == "chutes" and "intel_quote" not in rep


def test_attestation_reset_counts_fetches(emu: Emulator) -> None:
    emu.set_faults(Faults(attestation_reset=1), model="phala/gpt-oss-120b")
    with client(emu) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            report(c)
        nonce, rep = report(c)
    assert rep["request_nonce"] == nonce
    assert emu.stats.attestation_fetches == 2


def _nras(emu: Emulator, faults: Faults | None) -> tuple[str, list[object], dict[str, object]]:
    with client(emu) as c:
        nonce, rep = report(c)
    headers = {"X-Emulator-Faults": faults.to_header()} if faults else {}
    answer = httpx.post(emu.nras_url, content=str(rep["nvidia_payload"]), headers=headers).json()
    return nonce, answer, httpx.get(emu.nras_jwks_url).json()


def test_gpu_wrong_nonce(emu: Emulator) -> None:
    nonce, answer, jwks = _nras(emu, Faults(gpu_wrong_nonce=True))
    keys = jwt.PyJWKSet.from_dict(jwks)
    for token in [answer[0][1], *answer[1].values()]:  # type: ignore[index, attr-defined]
        claims = jwt.decode(
            token,
            keys[jwt.get_unverified_header(token)["kid"]].key,
            algorithms=["ES384"],
            issuer=emu.origin,
        )
        assert claims["eat_nonce"] != nonce


def test_gpu_unknown_key(emu: Emulator) -> None:
    _, answer, jwks = _nras(emu, Faults(gpu_unknown_key=True))
    kid = jwt.get_unverified_header(answer[0][1])["kid"]  # type: ignore[index]
    assert kid not in {k["kid"] for k in jwks["keys"]}  # type: ignore[union-attr, index]
    key = jwt.PyJWKSet.from_dict(jwks).keys[0].key
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(answer[0][1], key, algorithms=["ES384"], issuer=emu.origin)  # type: ignore[index]


def test_nras_faults_follow_the_model_that_issued_the_nonce(emu: Emulator) -> None:
    emu.set_faults(Faults(gpu_wrong_nonce=True), model="phala/gpt-oss-120b")
    nonce, answer, _ = _nras(emu, None)
    claims = jwt.decode(answer[0][1], options={"verify_signature": False})  # type: ignore[index]
    assert claims["eat_nonce"] != nonce
    assert emu.stats.nras_calls == 1


def test_nras_rejects_non_payloads(emu: Emulator) -> None:
    bad = httpx.post(emu.nras_url, content=b'{"nonce": "xyz", "evidence_list": []}')
    assert bad.status_code == 400
