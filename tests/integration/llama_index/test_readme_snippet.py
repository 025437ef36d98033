"""The README's LlamaIndex example runs as written (against the emulator, set up through the same
environment variables a user would set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpill_integrations.emulator import Emulator

SNIPPET = """
from llama_index.core.llms import ChatMessage
from redpill_integrations import ReceiptStore, VerificationFailed
from redpill_integrations.llama_index import Redpill

# REDPILL_API_KEY from the environment; verification="strict" is the default
llm = Redpill(model="phala/gpt-oss-120b", receipt_store=ReceiptStore.default())
try:
    response = llm.chat([ChatMessage(role="user", content="Summarise our audit policy.")])
except VerificationFailed as failed:  # nothing is lost: failed.response holds the answer
    raise SystemExit(f"not verified: {failed.result.reasons}")
verdict = response.additional_kwargs["redpill_verification"]
print(verdict["status"], verdict["chat_id"], verdict["receipt_id"])
"""


def test_readme_snippet_runs(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDPILL_API_KEY", emu.api_key)
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    monkeypatch.setenv("REDPILL_TRUST_FILE", str(emu.write_trust_file(tmp_path / "trust.json")))
    monkeypatch.setenv("REDPILL_RECEIPTS", str(tmp_path / "receipts.sqlite3"))
    exec(compile(SNIPPET, "README.md", "exec"), {})
    status, chat_id, receipt_id = capsys.readouterr().out.split()
    assert status == "verified" and chat_id.startswith("chatcmpl-")
    from redpill_integrations import ReceiptStore

    receipt = ReceiptStore(tmp_path / "receipts.sqlite3").get(receipt_id)
    assert receipt is not None and receipt.result.chat_id == chat_id
