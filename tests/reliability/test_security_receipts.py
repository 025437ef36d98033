"""Security review V3: offline re-verification trusts the caller, never the receipt.

A receipt is evidence to judge, written by whoever holds the file. Before the fix ``reverify`` and
``redpill verify`` applied the receipt's own recorded policy, so (a) a genuinely *failed* receipt
whose ``policy``/``result`` were edited re-verified ``verified`` (exit 0), and (b) a wholly forged
receipt (an attacker's TD with GPU tokens signed by the forger's own key) did too. Now the
caller's policy applies (``--policy FILE`` on the CLI; the receipt's is shown as a diff), NVIDIA's
keys must chain to the caller's pinned NRAS CA, and a time far from now is said to be.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

from redpill_integrations.cli import main
from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import Receipt, policy_diff, reverify
from redpill_integrations.results import Reason, Status, VerificationResult
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

from .test_security_nras import Forger, forge

MODEL = "phala/gpt-oss-120b"
OTHER_MRTD = "ab" * 48


def _receipt(emulator: Emulator, trust: TrustAnchors, policy: VerificationPolicy) -> Receipt:
    with RedpillVerifier(
        base_url=emulator.base_url, api_key=emulator.api_key, trust=trust, policy=policy
    ) as v:
        sdk = openai.OpenAI(
            base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
        )
        tag = v.recorder.new_tag()
        sdk.chat.completions.create(
            model=MODEL,
            extra_headers={CAPTURE_HEADER: tag},
            messages=[{"role": "user", "content": "approve the transfer?"}],
        )
        return Receipt.from_json(v.verify_exchange(v.recorder.take(tag)).to_json())


@pytest.fixture(scope="module")
def failed(emulator: Emulator) -> Receipt:
    """A genuine exchange that failed: the recording policy pins another MRTD."""
    receipt = _receipt(
        emulator, emulator.trust, VerificationPolicy(allowed_mrtds=frozenset({OTHER_MRTD}))
    )
    assert receipt.result.reasons == (Reason.MEASUREMENT_NOT_ALLOWED,)
    return receipt


def _edited(receipt: Receipt) -> Receipt:
    """An insider's edit: a permissive recorded policy and a ``verified`` recorded result."""
    result = VerificationResult.build(
        checks={}, reasons=(), required=(), chat_id=receipt.chat_id, model=receipt.model
    )
    assert result.status is Status.VERIFIED
    loose = VerificationPolicy(require_code_pin=False).to_dict()
    return dataclasses.replace(receipt, policy=loose, result=result)


def _write(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def _cli_verify(
    tmp_path: Path, capsys: Any, receipt: Receipt, trust: TrustAnchors, *extra: str
) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(
        [
            "verify",
            _write(tmp_path, "receipt.json", receipt.to_json()),
            "--trust",
            _write(tmp_path, "trust.json", trust.to_dict()),
            "--json",
            *extra,
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def test_an_edited_failed_receipt_fails_under_the_callers_policy(
    failed: Receipt, emulator: Emulator, tmp_path: Path, capsys: Any
) -> None:
    """The caller pins the same MRTD the recording did: the edit changes nothing."""
    edited = _edited(failed)
    pin = {"allowed_mrtds": [OTHER_MRTD]}
    code, out = _cli_verify(
        tmp_path, capsys, edited, emulator.trust, "--policy", _write(tmp_path, "p.json", pin)
    )
    assert code == 1
    assert (out["verification"]["status"], out["verification"]["reasons"]) == (
        "failed",
        ["MEASUREMENT_NOT_ALLOWED"],
    )
    assert out["original_status"] == "verified" and out["matches_original"] is False
    assert out["policy_source"].endswith("p.json")


def test_the_receipts_recorded_policy_is_shown_never_applied(
    failed: Receipt, emulator: Emulator, tmp_path: Path, capsys: Any
) -> None:
    """The recorded policy waives the code pin; the caller's default keeps it."""
    edited = _edited(failed)
    unregistered = dataclasses.replace(emulator.trust, os_images={})
    result = reverify(edited, trust=unregistered)
    assert (result.status, result.reasons) == (Status.FAILED, (Reason.MEASUREMENT_NOT_ALLOWED,))
    assert policy_diff(edited, VerificationPolicy()) == {"require_code_pin": (False, True)}
    code, out = _cli_verify(tmp_path, capsys, edited, unregistered)
    assert code == 1 and out["verification"]["reasons"] == ["MEASUREMENT_NOT_ALLOWED"]
    assert out["receipt_policy_diff"] == {"require_code_pin": {"receipt": False, "applied": True}}
    assert out["policy_source"] == "default"
    # applied only on purpose
    on_purpose = reverify(edited, trust=unregistered, policy=edited.recorded_policy())
    assert on_purpose.status is Status.VERIFIED


def test_a_wholly_forged_receipt_fails(emulator: Emulator, tmp_path: Path, capsys: Any) -> None:
    """An attacker's own TD (its measurements match no registered image) plus GPU tokens signed by
    the forger's key, bundled with a JWKS of the forger's making; a permissive recorded policy."""
    attacker_view = dataclasses.replace(emulator.trust, os_images={})
    genuine = _receipt(emulator, emulator.trust, VerificationPolicy())
    assert genuine.attestation is not None and genuine.attestation.nras_response is not None
    forger = Forger()
    forged = _edited(
        forge(genuine, forger.re_sign(genuine.attestation.nras_response), forger.jwks())
    )
    result = reverify(forged, trust=attacker_view)
    assert (result.status, result.reasons) == (
        Status.FAILED,
        (Reason.MEASUREMENT_NOT_ALLOWED, Reason.GPU_TOKEN_INVALID),
    )
    code, out = _cli_verify(tmp_path, capsys, forged, attacker_view)
    assert code == 1
    assert out["verification"]["reasons"] == ["MEASUREMENT_NOT_ALLOWED", "GPU_TOKEN_INVALID"]


@pytest.mark.parametrize(
    ("shift", "far"),
    [(timedelta(days=-400), True), (timedelta(days=3), True), (timedelta(hours=-2), False)],
)
def test_a_time_far_from_now_is_shown(
    emulator: Emulator, tmp_path: Path, capsys: Any, shift: timedelta, far: bool
) -> None:
    genuine = _receipt(emulator, emulator.trust, VerificationPolicy())
    at = (datetime.now(UTC) + shift).isoformat()
    capsys.readouterr()
    receipt_file = _write(tmp_path, "r.json", genuine.to_json())
    trust_file = _write(tmp_path, "t.json", emulator.trust.to_dict())
    main(["verify", receipt_file, "--trust", trust_file, "--at", at])
    text = capsys.readouterr().out
    assert ("days back from now" in text or "days ahead from now" in text) == far
    _, out = _cli_verify(tmp_path, capsys, genuine, emulator.trust, "--at", at)
    seconds = out["at_far_from_now_seconds"]
    assert (seconds is not None) == far
    if far:
        assert abs(seconds - shift.total_seconds()) < 120


def test_a_back_dated_receipt_time_is_shown(
    emulator: Emulator, tmp_path: Path, capsys: Any
) -> None:
    genuine = _receipt(emulator, emulator.trust, VerificationPolicy())
    assert genuine.verified_at is not None
    old = dataclasses.replace(genuine, verified_at=genuine.verified_at - timedelta(days=30))
    _, out = _cli_verify(tmp_path, capsys, old, emulator.trust)
    assert out["at_source"] == "receipt"
    assert out["at_far_from_now_seconds"] is not None
    assert out["at_far_from_now_seconds"] < -29 * 86400


def test_a_policy_file_with_an_unknown_field_is_refused(
    failed: Receipt, emulator: Emulator, tmp_path: Path, capsys: Any
) -> None:
    policy = _write(tmp_path, "p.json", {"allowed_mrtd": [OTHER_MRTD]})  # misspelt
    receipt_file = _write(tmp_path, "r.json", failed.to_json())
    trust_file = _write(tmp_path, "t.json", emulator.trust.to_dict())
    code = main(["verify", receipt_file, "--trust", trust_file, "--policy", policy])
    assert code != 0
    assert "allowed_mrtd" in capsys.readouterr().err
