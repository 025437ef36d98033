"""One byte changed anywhere relevant in a verified receipt changes the offline verdict, exactly."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import openai
import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.receipts import Receipt, reverify
from redpill_integrations.results import Reason, Status
from redpill_integrations.verify.models import SignatureRecord
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier


@pytest.fixture(scope="module")
def verified(emulator: Emulator) -> Receipt:
    v = RedpillVerifier(base_url=emulator.base_url, api_key=emulator.api_key, trust=emulator.trust)
    sdk = openai.OpenAI(
        base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
    )
    tag = v.recorder.new_tag()
    sdk.chat.completions.create(
        model="phala/gpt-oss-120b",
        extra_headers={CAPTURE_HEADER: tag},
        messages=[{"role": "user", "content": "hi"}],
    )
    receipt = v.verify_exchange(v.recorder.take(tag))
    assert receipt.result.status is Status.VERIFIED
    return Receipt.from_json(receipt.to_json())


def flip_hex(text: str, at: int) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def signature(r: Receipt) -> Receipt:
    assert r.signature is not None
    data = json.loads(r.signature.raw)
    data["signature"] = flip_hex(data["signature"], 10)
    return dataclasses.replace(r, signature=SignatureRecord.from_json(json.dumps(data).encode()))


def report(edit: Callable[[dict], None]) -> Callable[[Receipt], Receipt]:  # type: ignore[type-arg]
    def change(r: Receipt) -> Receipt:
        assert r.attestation is not None
        data = json.loads(r.attestation.report)
        edit(data)
        evidence = dataclasses.replace(r.attestation, report=json.dumps(data).encode())
        return dataclasses.replace(r, attestation=evidence)

    return change


def quote_byte(data: dict) -> None:  # type: ignore[type-arg]
    data["intel_quote"] = flip_hex(data["intel_quote"], 1200)


def compose_hash(data: dict) -> None:  # type: ignore[type-arg]
    data["info"]["compose_hash"] = "00" * 32


def nras_byte(r: Receipt) -> Receipt:
    assert r.attestation is not None and r.attestation.nras_response is not None
    body = bytearray(r.attestation.nras_response)
    body[len(body) // 2] ^= 0x01
    evidence = dataclasses.replace(r.attestation, nras_response=bytes(body))
    return dataclasses.replace(r, attestation=evidence)


def collateral_byte(r: Receipt) -> Receipt:
    assert r.attestation is not None
    ((fmspc, text),) = r.attestation.collateral.items()
    col = json.loads(text)
    col["tcb_info"] = col["tcb_info"].replace('"UpToDate"', '"UpToDatf"', 1)
    evidence = dataclasses.replace(r.attestation, collateral={fmspc: json.dumps(col)})
    return dataclasses.replace(r, attestation=evidence)


def test_untouched_receipt_gives_the_same_verdict(verified: Receipt, emulator: Emulator) -> None:
    again = reverify(verified, trust=emulator.trust)
    assert again.to_dict() == {**verified.result.to_dict(), "detail": again.detail}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (signature, Reason.SIGNATURE_INVALID),
        (report(quote_byte), Reason.QUOTE_INVALID),
        (report(compose_hash), Reason.COMPOSE_MISMATCH),
        (nras_byte, Reason.GPU_TOKEN_INVALID),
        (collateral_byte, Reason.QUOTE_INVALID),
    ],
)
def test_one_changed_byte_fails_with_the_exact_reason(
    verified: Receipt, emulator: Emulator, change: Callable[[Receipt], Receipt], expected: Reason
) -> None:
    result = reverify(change(verified), trust=emulator.trust)
    assert result.status is Status.FAILED and expected in result.reasons
