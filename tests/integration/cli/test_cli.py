"""The `redpill` CLI against the emulator: output, exit codes, and a key that never shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redpill_integrations.cli import EXIT_CODES, main
from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.results import Reason

CANARY = "sk-canary-9f7c2b41d0e8"
MODEL = "phala/deepseek-chat-v3-0324"


@pytest.fixture
def env(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    trust = tmp_path / "trust.json"
    emu.write_trust_file(trust)
    store = tmp_path / "receipts.sqlite3"
    monkeypatch.setenv("REDPILL_API_KEY", CANARY)
    # A real-looking key goes only where the user points it (never where a trust file says).
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    monkeypatch.delenv("REDPILL_TRUST_FILE", raising=False)
    return {"trust": str(trust), "store": str(store)}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert CANARY not in out and CANARY not in err
    return code, out, err


def test_chat_verified_prints_answer_verdict_and_trust_chain(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "chat", "hello", "--model", MODEL, "--trust", env["trust"], "--store", env["store"]
    )
    assert code == EXIT_CODES["verified"] == 0
    assert "verdict     VERIFIED" in out
    assert "NVIDIA NRAS: 1 GPU(s)" in out
    assert len(ReceiptStore(env["store"])) == 1


def test_chat_json_stream(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "chat",
        "hello",
        "--model",
        MODEL,
        "--stream",
        "--json",
        "--trust",
        env["trust"],
        "--store",
        env["store"],
    )
    data = json.loads(out)
    assert code == 0
    assert data["verification"]["status"] == "verified"
    assert data["content"]


def test_chat_tampered_response_exits_failed(
    emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emu.set_faults(Faults(tamper_response="alter"))
    code, out, _ = run(
        capsys,
        "chat",
        "hello",
        "--model",
        MODEL,
        "--json",
        "--trust",
        env["trust"],
        "--store",
        env["store"],
    )
    assert code == EXIT_CODES["failed"] == 1
    assert json.loads(out)["verification"]["reasons"] == ["RESPONSE_HASH_MISMATCH"]


def test_chat_non_tee_model_exits_unverifiable(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "chat",
        "hello",
        "--model",
        "openai/gpt-4o-mini",
        "--json",
        "--trust",
        env["trust"],
        "--store",
        env["store"],
    )
    assert code == EXIT_CODES["unverifiable"] == 3
    assert json.loads(out)["verification"]["reasons"] == ["MODEL_NOT_TEE"]


def test_chat_that_cannot_connect_is_a_transport_error(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "chat",
        "hello",
        "--model",
        MODEL,
        "--trust",
        env["trust"],
        "--store",
        env["store"],
        "--base-url",
        "http://127.0.0.1:1/v1",  # nothing listens on port 1
    )
    assert code == EXIT_CODES["error"] == 4
    assert err.splitlines()[-1] == "redpill: TransportError: chat call failed: APIConnectionError"
    assert len(ReceiptStore(env["store"])) == 0  # no exchange, so no receipt


def test_chat_stream_that_breaks_off_keeps_its_receipt(
    emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emu.set_faults(Faults(reset_mid_stream=True))
    code, _, err = run(
        capsys,
        "chat",
        "hello",
        "--model",
        MODEL,
        "--stream",
        "--json",
        "--trust",
        env["trust"],
        "--store",
        env["store"],
    )
    assert code == EXIT_CODES["error"] == 4
    (receipt,) = ReceiptStore(env["store"]).list(limit=5)
    assert err.splitlines()[-1] == (
        "redpill: TransportError: chat call failed: RemoteProtocolError;"
        f" receipt {receipt.receipt_id} (unverifiable)"
    )
    assert receipt.result.reasons == (Reason.STREAM_INCOMPLETE,)
    assert receipt.response_body  # the bytes that did arrive are kept


def test_attest_shows_trust_chain(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "attest", "--model", MODEL, "--trust", env["trust"])
    assert code == 0
    assert "Intel TDX quote (DCAP)" in out and "tcb=UpToDate" in out
    assert "attestation VERIFIED" in out
    assert "… collateral" in err  # live progress while fetching


def test_attest_with_unattested_signer_exits_failed(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "attest",
        "--model",
        MODEL,
        "--trust",
        env["trust"],
        "--json",
        "--signer",
        "0x" + "11" * 20,
    )
    assert code == 1
    assert json.loads(out)["attestation"]["reasons"] == ["SIGNER_NOT_ATTESTED"]


def test_attest_stale_nonce_exits_failed(
    emu: Emulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    emu.set_faults(Faults(ignore_nonce=True))
    code, out, _ = run(capsys, "attest", "--model", MODEL, "--trust", env["trust"], "--json")
    assert code == 1
    assert "NONCE_MISMATCH" in json.loads(out)["attestation"]["reasons"]


def test_receipts_list_show_export_and_offline_verify(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (
        run(
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
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "receipts", "list", "--json", "--store", env["store"])
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1 and rows[0]["status"] == "verified"
    rid = rows[0]["receipt_id"]

    code, out, _ = run(capsys, "receipts", "show", rid, "--store", env["store"])
    assert code == 0 and rid in out

    export = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "receipts", "export", "--out", str(export), "--store", env["store"])
    assert code == 0 and "exported 1 receipt(s)" in err
    line = export.read_text().strip()
    assert CANARY not in line

    code, out, _ = run(capsys, "verify", rid, "--store", env["store"], "--trust", env["trust"])
    assert code == 0 and "verdict     VERIFIED" in out

    # one byte of the stored response changed: the offline verdict is no longer verified
    receipt = json.loads(line)
    import base64

    body = bytearray(base64.b64decode(receipt["response_body_b64"]))
    body[-5] ^= 0x01
    receipt["response_body_b64"] = base64.b64encode(bytes(body)).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(receipt))
    code, out, _ = run(capsys, "verify", str(tampered), "--trust", env["trust"], "--json")
    assert code == 1
    assert json.loads(out)["verification"]["reasons"] == ["RESPONSE_HASH_MISMATCH"]


def test_usage_and_error_exit_codes(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["chat"])  # missing prompt and --model
    assert exc.value.code == EXIT_CODES["usage"] == 2
    code, _, err = run(capsys, "verify", "nope", "--store", env["store"], "--at", "yesterday")
    assert code == 2 and "--at" in err
    code, _, err = run(capsys, "verify", "no-such-receipt", "--store", env["store"])
    assert code == EXIT_CODES["error"] == 4
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(capsys, "receipts", "list", "--limit", "0", "--store", env["store"])
    assert code == 2


def test_demo_runs_against_the_embedded_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDPILL_API_KEY", raising=False)
    monkeypatch.delenv("REDPILL_TRUST_FILE", raising=False)
    store = tmp_path / "demo.sqlite3"
    code = main(["demo", "--store", str(store)])
    out = capsys.readouterr().out
    assert code == 0
    assert "EMBEDDED EMULATOR" in out and "NOT a" in out  # clearly labelled
    assert "5/5 verdicts verified" in out
    assert "offline verdict matches the original: yes" in out
    assert len(ReceiptStore(store)) == 4  # tool call, answer, stream, RAG: one receipt each
    # on the emulator's default protocol, ACI: each verdict names it and the upstream
    assert "EMBEDDED EMULATOR (aci)" in out
    assert out.count("VERIFIED [aci]  upstream phala-emu serving ") == 4
    assert "The trust chain behind the last verdict: the ACI gateway's" in out
    assert "✔ dstack KMS custody: root " in out


def test_emulator_command_hands_its_arguments_to_the_emulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["emulator", "--help"])
    assert exc.value.code == 0
    assert "--trust-out" in capsys.readouterr().out


def test_emulator_command_accepts_the_documented_flags(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    trust = tmp_path / "trust.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redpill_integrations.cli",
            "emulator",
            "--port",
            "0",
            "--trust-out",
            str(trust),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not trust.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert trust.exists(), proc.stdout.read() if proc.poll() is not None else "no trust file"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert json.loads(trust.read_text())["kind"] == "redpill-emulator"
