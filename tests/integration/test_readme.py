"""Every Python snippet in README.md runs, as written, against the emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from redpill_integrations.emulator import Emulator

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_the_documented_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(
    index: int,
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust = tmp_path / "trust.json"
    emu.write_trust_file(trust)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    monkeypatch.setenv("REDPILL_API_KEY", emu.api_key)
    monkeypatch.setenv("REDPILL_TRUST_FILE", str(trust))
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    # every snippet prints a verdict; against a healthy emulator it is "verified" (the strict-mode
    # snippet prints only when verification fails, so it prints nothing)
    assert "failed" not in out and "unverifiable" not in out
    if "except VerificationFailed" not in SNIPPETS[index]:
        assert "verified" in out
