"""The `redpill` CLI against the emulator's default protocol, ACI: ``attest`` shows the gateway's
chain, ``chat`` the upstream provider and claims, ``models`` the listing with ``is_tee``; ``--json``
on each; ``verify`` re-verifies an ACI receipt offline; server strings are escaped. The legacy
protocol keeps its own tests (``test_cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redpill_integrations.cli import EXIT_CODES, main
from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.receipts import ReceiptStore

CANARY = "sk-canary-aci-5e1d"
MODEL = "phala/deepseek-r1-70b"  # near-ai upstream in the emulator
NON_TEE = "openai/gpt-4o-mini"


@pytest.fixture
def env(aci_emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    trust = tmp_path / "trust.json"
    aci_emu.write_trust_file(trust)
    monkeypatch.setenv("REDPILL_API_KEY", CANARY)
    monkeypatch.setenv("REDPILL_BASE_URL", aci_emu.base_url)
    monkeypatch.delenv("REDPILL_TRUST_FILE", raising=False)
    return {"trust": str(trust), "store": str(tmp_path / "receipts.sqlite3")}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert CANARY not in out and CANARY not in err
    return code, out, err


def test_attest_shows_the_gateway_chain_with_progress(
    aci_emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "attest", "--model", MODEL, "--trust", env["trust"])
    assert code == EXIT_CODES["verified"]
    assert "attesting the ACI gateway" in err
    assert [line.strip() for line in err.splitlines()[1:]] == [
        "… report",
        "… collateral",
        "… verify",
    ]
    for shown in (
        "Intel TDX quote (DCAP): the ACI gateway   tcb=UpToDate",
        "✔ event log replays to RTMR0-3",
        "✔ compose hash ",
        "app id ",
        "OS image ",
        "source commit ",
        "✔ dstack KMS custody: root ",
        "· receipt (aci.receipt.ed25519.v1)",
        f"✔ report_data binds keyset {aci_emu.keyset_digest[:30]}",
        "keyset valid until ",
        "receipt keys: ",
        f"model {MODEL}: served from a TEE (gateway's listing): yes",
        "gateway attestation VERIFIED",
    ):
        assert shown in out, shown


def test_attest_json_names_the_whole_chain(
    aci_emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "attest", "--json", "--trust", env["trust"])
    data = json.loads(out)
    assert code == 0 and err == ""
    assert (data["protocol"], data["status"], data["reasons"]) == ("aci", "verified", [])
    gateway = data["gateway"]
    assert gateway["keyset_digest"] == aci_emu.keyset_digest
    assert set(gateway["checks"].values()) == {"pass"}
    assert gateway["tcb_status"] == "UpToDate"
    assert gateway["kms_root"] in aci_emu.trust.kms_root_pubkeys
    assert gateway["app_id"] in aci_emu.trust.aci_app_ids
    assert gateway["os_image_hash"] in aci_emu.trust.os_images
    assert "receipt" in {c["role"] for c in gateway["key_custody"]}
    assert gateway["keyset_not_after"] and gateway["source_commit"] and gateway["receipt_keys"]
    assert len(gateway["nonce"]) == 64 and gateway["mrtd"] and gateway["rtmr3"]


def test_attest_fault_exits_failed_with_its_code(
    aci_emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    aci_emu.set_faults(Faults(custody_unknown_root=True))
    code, out, _ = run(capsys, "attest", "--json", "--trust", env["trust"])
    data = json.loads(out)
    assert code == EXIT_CODES["failed"]
    assert (data["status"], data["reasons"]) == ("failed", ["KEY_CUSTODY_INVALID"])
    assert data["gateway"]["checks"]["key_custody"] == "fail"


def test_models_lists_is_tee(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--json", "--trust", env["trust"])
    data = json.loads(out)
    assert code == 0 and data["protocol"] == "aci"
    listed = {m["id"]: m["is_tee"] for m in data["models"]}
    assert listed[MODEL] is True and listed[NON_TEE] is False
    code, out, _ = run(capsys, "models", "--trust", env["trust"])
    assert code == 0 and "(aci gateway)" in out
    assert any(line.split() == [NON_TEE, "not", "TEE"] for line in out.splitlines())
    assert any(line.split() == [MODEL, "TEE"] for line in out.splitlines())


def test_chat_shows_the_upstream_provider_and_claims(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("chat", "hello", "--model", MODEL, "--trust", env["trust"], "--store", env["store"])
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "verdict     VERIFIED" in out
    assert "protocol    aci (signed by the gateway)" in out
    assert "upstream    near-ai serving " in out
    assert "claims      " in out and "tee_attested=asserted/hardware_proven" in out
    assert "✔ dstack KMS custody" in out  # the trust chain
    code, out, _ = run(capsys, *argv, "--stream", "--json")
    data = json.loads(out)["verification"]
    assert code == 0 and (data["status"], data["protocol"]) == ("verified", "aci")
    assert data["aci"]["upstream"]["provider"] == "near-ai"
    assert data["aci"]["upstream"]["claims"]["tee_attested"]["status"] == "asserted"
    assert len(ReceiptStore(env["store"])) == 2


def test_chat_non_tee_model_is_refused_by_the_gateway_and_keeps_its_receipt(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "chat", "hi", "--model", NON_TEE, "--trust", env["trust"], "--store", env["store"]
    )
    assert code == EXIT_CODES["error"]
    assert "chat call failed" in err and "(unverifiable)" in err
    (receipt,) = ReceiptStore(env["store"]).list()
    assert receipt.result.reasons[0].value == "UPSTREAM_REFUSED"


def test_chat_fault_exits_failed(
    aci_emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    aci_emu.set_faults(Faults(receipt_body_hash="response"))
    code, out, _ = run(
        capsys,
        "chat",
        "hi",
        "--model",
        MODEL,
        "--json",
        "--trust",
        env["trust"],
        "--store",
        env["store"],
    )
    data = json.loads(out)["verification"]
    assert code == EXIT_CODES["failed"]
    assert (data["status"], data["reasons"]) == ("failed", ["RESPONSE_HASH_MISMATCH"])


def test_offline_verify_of_an_aci_receipt(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ("--trust", env["trust"], "--store", env["store"])
    assert run(capsys, "chat", "hi", "--model", MODEL, "--json", *argv)[0] == 0
    (receipt,) = ReceiptStore(env["store"]).list()
    code, out, _ = run(capsys, "verify", receipt.receipt_id, *argv)
    assert code == 0 and "protocol    aci (signed by the gateway)" in out
    code, out, _ = run(capsys, "verify", receipt.receipt_id, "--json", *argv)
    data = json.loads(out)
    assert code == 0 and data["matches_original"] is True
    assert data["verification"]["protocol"] == "aci"


def test_server_strings_are_escaped_in_the_aci_rendering() -> None:
    from redpill_integrations.cli.display_aci import render_verdict
    from redpill_integrations.results import (
        AciSummary,
        UpstreamSummary,
        VerificationResult,
    )

    evil = "near-ai\x1b[2J\rVERIFIED"
    result = VerificationResult.build(
        checks={},
        reasons=[],
        required=(),
        protocol="aci",
        signed_by="gateway",
        model="m\x1b]0;x\x07",
        aci=AciSummary(
            source_commit="c\u202e",
            upstream=UpstreamSummary(provider=evil, claims={"k\x1b": {"status": "a\rb"}}),
        ),
    )
    text = render_verdict(result, trust_chain=True)
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\x07" not in text
    assert "near-ai\\x1b[2J\\rVERIFIED" in text and "c\\u202e" in text
