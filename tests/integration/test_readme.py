"""Every Python block in README.md runs, as written, against the emulator (docs that run).

The blocks are read from the README itself, so a test cannot drift into testing a private copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redpill_integrations.emulator import Emulator

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(text: str) -> list[tuple[str, str]]:
    """``(section heading, code)`` for every ```` ```python ```` block, in README order."""
    section, blocks = "", []
    for match in re.finditer(r"^## ([^\n]+)$|^```python\n(.*?)^```", text, flags=re.M | re.S):
        if match.group(1) is not None:
            section = match.group(1).strip()
        else:
            blocks.append((section, match.group(2)))
    return blocks


BLOCKS = _blocks(README.read_text(encoding="utf-8"))
SECTIONS = [section for section, _ in BLOCKS]


def test_readme_has_the_documented_blocks() -> None:
    by_section = dict(BLOCKS)
    assert "from redpill_integrations.langchain import ChatRedpill" in by_section["LangChain"]
    assert "from redpill_integrations.llama_index import Redpill" in by_section["LlamaIndex"]
    assert "reverify(" in by_section["Receipts"]
    assert len(BLOCKS) >= 4


@pytest.fixture
def readme_env(aci_emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a user would set for the emulator (its default protocol, ACI, as
    api.redpill.ai), with every file under ``tmp_path``."""
    emu = aci_emu
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    monkeypatch.setenv("REDPILL_API_KEY", emu.api_key)
    monkeypatch.setenv("REDPILL_TRUST_FILE", str(emu.write_trust_file(tmp_path / "trust.json")))
    monkeypatch.setenv("REDPILL_RECEIPTS", str(tmp_path / "receipts.sqlite3"))


def _run(index: int, capsys: pytest.CaptureFixture[str]) -> str:
    section, code = BLOCKS[index]
    exec(compile(code, f"README.md block {index} ({section})", "exec"), {"__name__": "readme"})
    return capsys.readouterr().out


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=SECTIONS)
def test_readme_block_runs_and_reports_verified(
    index: int, readme_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(index, capsys)
    if "except VerificationFailed" in BLOCKS[index][1]:
        # the strict-mode block prints only when verification fails
        assert out == ""
    else:
        # each block prints a verdict line; against a healthy emulator it is verified, no reasons
        assert re.search(r"^verified\b", out, flags=re.M), out
        assert "failed" not in out and "unverifiable" not in out


def test_readme_langchain_block_prints_answer_verdict_and_stream(
    readme_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(SECTIONS.index("LangChain"), capsys)
    answer, verdict, upstream, streamed = out.split("\n", 3)
    assert answer.startswith("Emulated reply from phala/deepseek-chat-v3-0324")
    status, reasons, protocol, receipt_id = verdict.split(" ")
    assert (status, reasons, protocol, receipt_id) == ("verified", "[]", "aci", "None")  # no store
    assert upstream == "upstream deepseek-ai/DeepSeek-V3-0324 verified"
    assert streamed.startswith("Emulated reply")


def test_readme_llama_index_block_prints_answer_and_verdict(
    readme_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(SECTIONS.index("LlamaIndex"), capsys)
    answer, verdict = out.rstrip("\n").rsplit("\n", 1)
    assert answer.startswith("Emulated reply from phala/deepseek-chat-v3-0324")
    status, reasons, _receipt_id = verdict.split(" ")
    assert (status, reasons) == ("verified", "[]")


def _shell_lines(text: str) -> list[str]:
    """The commands of every ```` ```bash ```` block, comments dropped."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def test_readme_shell_commands_are_the_documented_ones() -> None:
    """The shell blocks hold only the two ``./dev`` commands and ``redpill emulator``, whose flags
    the emulator's parser accepts (and which serves ACI unless told ``--protocol legacy``)."""
    from redpill_integrations.emulator.__main__ import build_parser

    lines = _shell_lines(README.read_text(encoding="utf-8"))
    assert lines[:2] == ["./dev demo", "./dev test"]
    dev = (README.parent / "dev").read_text(encoding="utf-8")
    assert "demo)" in dev and "test)" in dev
    emulator = [line for line in lines[2:] if " emulator" in line]
    assert emulator and len(emulator) == len(lines) - 2
    for line in emulator:
        args = line.split(" emulator", 1)[1].split()
        assert build_parser().parse_args(args).protocol == "aci"
