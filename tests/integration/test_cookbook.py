"""Every cookbook example runs against the emulator (ACI, its default) and reports all verdicts
verified."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpill_integrations import ReceiptStore
from redpill_integrations.emulator import Emulator, Reply

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"


@pytest.fixture
def emulator_env(
    aci_emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Emulator]:
    """The cookbook runs on the emulator's default protocol, ACI (as api.redpill.ai)."""
    emu = aci_emu
    trust = tmp_path / "trust.json"
    emu.write_trust_file(trust)
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    monkeypatch.setenv("REDPILL_API_KEY", emu.api_key)
    monkeypatch.setenv("REDPILL_TRUST_FILE", str(trust))
    monkeypatch.setenv("REDPILL_RECEIPTS", str(tmp_path / "receipts.sqlite3"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield emu


def _main(name: str):  # type: ignore[no-untyped-def]
    return runpy.run_path(str(COOKBOOK / name), run_name="cookbook")["main"]


def test_langchain_chain(emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(replies=[Reply.text("Confidential computing keeps data encrypted in use.")])
    assert _main("langchain_chain.py")() is True
    out = capsys.readouterr().out
    assert "Confidential computing keeps data encrypted in use." in out
    assert "verified chatcmpl-" in out
    assert out.rstrip().endswith(" aci")  # the emulator's default protocol, as api.redpill.ai
    assert len(ReceiptStore.default()) == 1


def test_langgraph_agent(emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(
        replies=[
            Reply.tool_call("lookup_policy", {"topic": "patient records"}),
            Reply.text("Patient records are processed only inside attested TEEs."),
        ]
    )
    assert _main("langgraph_agent.py")() is True
    out = capsys.readouterr().out
    assert "Patient records are processed only inside attested TEEs." in out
    assert out.count(": verified") == 2  # the tool-call step and the answer step


def test_llama_index_rag(emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(replies=[Reply.text("Inside NVIDIA GPU TEEs.")])
    assert _main("llama_index_rag.py")() is True
    out = capsys.readouterr().out
    assert "Inside NVIDIA GPU TEEs." in out and "verified chatcmpl-" in out


def test_audit_receipts(emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("langchain_chain.py")() is True
    assert _main("langchain_chain.py")() is True
    capsys.readouterr()
    assert _main("audit_receipts.py")([]) is True
    assert "2 receipts re-verified offline: {'verified': 2}" in capsys.readouterr().out


def test_audit_receipts_flags_a_tampered_store(
    emulator_env: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sqlite3

    assert _main("langchain_chain.py")() is True
    store = ReceiptStore.default()
    (receipt,) = store.list()
    tampered = tmp_path / "tampered.sqlite3"
    forged = ReceiptStore(tampered)
    import dataclasses

    body = bytearray(receipt.response_body or b"")
    body[-3] ^= 0x01
    forged.put(dataclasses.replace(receipt, response_body=bytes(body)))
    forged.close()
    capsys.readouterr()
    assert _main("audit_receipts.py")([str(tampered)]) is False
    out = capsys.readouterr().out
    assert f"DISAGREES {receipt.receipt_id}: stored verified, now failed" in out
    assert sqlite3.connect(tampered).execute("PRAGMA integrity_check").fetchone() == ("ok",)
