"""Our receipts of ACI exchanges: self-contained, round-tripping, re-verifiable with the network
off, and one changed byte in any stored document fails re-verification with its exact code."""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import Receipt, reverify
from redpill_integrations.verify.aci.bundle import AciEvidence
from tests.integration.wire.test_aci_wire import Rig


def _verdict(result: Any) -> tuple[str, tuple[str, ...]]:
    return result.status.value, tuple(r.value for r in result.reasons)


def network_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _receipt(emu: Emulator, tmp_path: Path, **kw: Any) -> Receipt:
    policy = VerificationPolicy(check_session=True)
    rig = Rig(emu, tmp_path, policy=policy)
    receipt = rig.chat(**kw)
    rig.verifier.close()
    assert _verdict(receipt.result) == ("verified", ()), receipt.result.detail
    return receipt


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_aci_receipt_round_trips_and_reverifies_offline(
    aci_emu: Emulator, tmp_path: Path, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = _receipt(aci_emu, tmp_path, stream=stream)
    text = receipt.to_json()
    back = Receipt.from_json(text)
    assert back == receipt and back.to_json() == text
    assert back.protocol == "aci"
    aci = back.aci
    assert aci is not None and aci.report and aci.receipt and aci.session and aci.collateral_json
    assert aci.nonce is not None and len(aci.nonce) == 64
    trust = aci_emu.trust
    network_off(monkeypatch)
    again = reverify(back, trust=trust)
    assert _verdict(again) == ("verified", ()), again.detail
    assert again.protocol == "aci" and again.signed_by == "gateway"
    assert again.aci == receipt.result.aci


def _flip_hex(text: str, member: str) -> str:
    """``text`` with the first hex digit of the string value of ``"member"`` changed."""
    at = text.index(f'"{member}":"') + len(member) + 4
    digit = text[at]
    return text[:at] + ("1" if digit == "0" else "0") + text[at + 1 :]


def _with(original: Receipt, /, **changes: Any) -> Receipt:
    assert original.aci is not None
    return dataclasses.replace(original, aci=dataclasses.replace(original.aci, **changes))


@pytest.fixture(scope="module")
def stored(aci_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Receipt:
    aci_emulator.reset()
    return _receipt(aci_emulator, tmp_path_factory.mktemp("aci-receipts"))


def _report(receipt: Receipt, member: str) -> Receipt:
    assert receipt.aci is not None and receipt.aci.report is not None
    return _with(receipt, report=_flip_hex(receipt.aci.report.decode(), member).encode())


def _document(receipt: Receipt, member: str) -> Receipt:
    assert receipt.aci is not None and receipt.aci.receipt is not None
    return _with(receipt, receipt=_flip_hex(receipt.aci.receipt.decode(), member).encode())


def _session(receipt: Receipt) -> Receipt:
    assert receipt.aci is not None and receipt.aci.session is not None
    raw = receipt.aci.session
    i = raw.index(b'"established_at":') + len(b'"established_at":')
    digit = b"1" if raw[i : i + 1] != b"1" else b"2"
    return _with(receipt, session=raw[:i] + digit + raw[i + 1 :])


def _collateral(receipt: Receipt) -> Receipt:
    assert receipt.aci is not None and receipt.aci.collateral_json is not None
    data = json.loads(receipt.aci.collateral_json)
    sig = data["tcb_info_signature"]
    data["tcb_info_signature"] = ("1" if sig[0] == "0" else "0") + sig[1:]
    return _with(receipt, collateral_json=json.dumps(data))


def _nonce(receipt: Receipt) -> Receipt:
    assert receipt.aci is not None and receipt.aci.nonce is not None
    n = receipt.aci.nonce
    return _with(receipt, nonce=("1" if n[0] == "0" else "0") + n[1:])


def _body(receipt: Receipt, which: str) -> Receipt:
    body = getattr(receipt, which)
    assert body is not None
    flipped = bytearray(body)
    flipped[-3] ^= 0x01
    return dataclasses.replace(receipt, **{which: bytes(flipped)})


CHANGES = {
    "report: restated keyset digest": (
        lambda r: _report(r, "workload_keyset_digest"),
        ("failed", ("KEYSET_DIGEST_MISMATCH",)),
    ),
    "report: report_data": (
        lambda r: _report(r, "report_data"),
        ("failed", ("REPORT_DATA_MISMATCH", "NONCE_MISMATCH")),
    ),
    "nonce": (_nonce, ("failed", ("REPORT_DATA_MISMATCH", "NONCE_MISMATCH"))),
    "collateral": (_collateral, ("failed", ("QUOTE_INVALID",))),
    "receipt: signature": (lambda r: _document(r, "signature"), ("failed", ("SIGNATURE_INVALID",))),
    "receipt: chat id": (
        lambda r: _document(r, "chat_id"),
        ("failed", ("SIGNATURE_INVALID", "RECEIPT_MISMATCH")),
    ),
    "session": (_session, ("failed", ("SESSION_MISMATCH",))),
    "request body": (
        lambda r: _body(r, "request_body"),
        ("failed", ("REQUEST_HASH_MISMATCH",)),
    ),
    "response body": (
        lambda r: _body(r, "response_body"),
        ("failed", ("RESPONSE_HASH_MISMATCH",)),
    ),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_one_changed_byte_in_any_stored_document_fails_reverification(
    stored: Receipt, aci_emulator: Emulator, name: str
) -> None:
    change, expected = CHANGES[name]
    changed = Receipt.from_json(change(stored).to_json())
    # the caller's policy decides (never the receipt's own): the one the receipt was made under,
    # which checks the session
    policy = VerificationPolicy(check_session=True)
    assert stored.recorded_policy() == policy
    result = reverify(changed, trust=aci_emulator.trust, policy=policy)
    assert _verdict(result) == expected, result.detail


def test_an_early_stop_reverifies_to_its_original_reasons(
    aci_emu: Emulator, tmp_path: Path
) -> None:
    rig = Rig(aci_emu, tmp_path)
    aci_emu.set_faults(Faults(missing_receipt_id=True))
    receipt = rig.chat()
    rig.verifier.close()
    assert _verdict(receipt.result) == ("failed", ("RECEIPT_MISSING",))
    assert receipt.aci is not None and receipt.aci.report is None
    assert _verdict(reverify(Receipt.from_json(receipt.to_json()), trust=aci_emu.trust)) == (
        "failed",
        ("RECEIPT_MISSING",),
    )


def test_a_receipt_without_bodies_cannot_be_rechecked(aci_emu: Emulator, tmp_path: Path) -> None:
    rig = Rig(aci_emu, tmp_path, policy=VerificationPolicy(receipt_bodies=False))
    receipt = rig.chat()
    rig.verifier.close()
    assert receipt.request_body is None and receipt.request_sha256
    assert _verdict(reverify(receipt, trust=aci_emu.trust)) == ("unverifiable", ("CHECK_NOT_RUN",))


def test_receipts_from_before_aci_still_load() -> None:
    old = {
        "format": 1,
        "receipt_id": "r1",
        "created_at": "2026-11-01T00:00:00+00:00",
        "result": {"status": "unverifiable", "reasons": ["MODEL_NOT_TEE"], "checks": {}},
    }
    receipt = Receipt.from_json(json.dumps(old))
    assert receipt.aci is None and receipt.protocol == "legacy"


def test_aci_evidence_round_trips_and_refuses_wrong_types() -> None:
    evidence = AciEvidence(
        endpoint="/v1/chat/completions",
        status_code=200,
        receipt_id="rcpt-1",
        keyset_digest_header=None,
        sent_aci_constraint=True,
        report=b"{}",
        receipt=b"\x00\xff",
    )
    assert AciEvidence.from_dict(json.loads(json.dumps(evidence.to_dict()))) == evidence
    bad = {**evidence.to_dict(), "nonce": 5}
    with pytest.raises(TypeError):
        AciEvidence.from_dict(bad)
    bad_b64 = {**evidence.to_dict(), "report_b64": base64.b64encode(b"x").decode() + "!"}
    with pytest.raises(ValueError):
        AciEvidence.from_dict(bad_b64)
