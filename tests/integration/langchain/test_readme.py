"""The README's LangChain snippet, run verbatim against the emulator (docs that run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpill_integrations.emulator import Emulator

SNIPPET = """
from redpill_integrations.langchain import ChatRedpill, RedpillCallbackHandler

llm = ChatRedpill(model="phala/deepseek-chat-v3-0324")  # REDPILL_API_KEY; strict by default
msg = llm.invoke("Summarise our retention policy in one line.")
print(msg.response_metadata["redpill_verification"]["status"])  # "verified" (else it raises)

handler = RedpillCallbackHandler()  # collects every verdict of a chain, agent or graph run
for chunk in llm.stream("Now in French.", config={"callbacks": [handler]}):
    print(chunk.content, end="")  # the last, empty chunk carries the verdict
assert handler.all_verified, handler.summary()
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
    exec(compile(SNIPPET, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("verified\n") and "Now in French." in out
