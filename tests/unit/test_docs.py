"""``docs/verdicts.md`` documents every reason code, check name and verdict field of ``results.py``.

A row is a Markdown table line whose first cell is the name in backticks (`` | `NAME` | ``). Each
reason code has exactly one row, whose second cell is its class (``failed`` / ``unverifiable``,
as :data:`FAILED_REASONS` says); each check and each ``to_dict()`` key (nested summaries as
``attestation.x``, ``aci.x``, ``aci.upstream.x``) has a row. Rows naming what ``results.py`` does
not define fail too, so the page can neither lag behind nor invent.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from redpill_integrations.results import (
    FAILED_REASONS,
    AciSummary,
    AttestationSummary,
    Check,
    Reason,
    Status,
    UpstreamSummary,
    VerificationResult,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
VERDICTS = DOCS / "verdicts.md"

#: the informational check of two-layer legacy reports (``verify/attestation.py``), not a Check
EXTRA_CHECKS = {"gateway"}
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)$")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def rows(text: str) -> list[tuple[str, list[str]]]:
    """(first-cell name, the other cells) of every table row that starts with a backticked name."""
    found = []
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", match.group(2))]
            found.append((match.group(1), cells))
    return found


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def field_names() -> set[str]:
    names = {f.name for f in dataclasses.fields(VerificationResult)}
    names |= {f"attestation.{f.name}" for f in dataclasses.fields(AttestationSummary)}
    names |= {f"aci.{f.name}" for f in dataclasses.fields(AciSummary)}
    names |= {f"aci.upstream.{f.name}" for f in dataclasses.fields(UpstreamSummary)}
    return names


@pytest.fixture(scope="module")
def text() -> str:
    return VERDICTS.read_text(encoding="utf-8")


def test_every_reason_code_has_exactly_one_row_with_its_class(text: str) -> None:
    reason_rows = rows(section(text, "Reason codes"))
    names = [name for name, _ in reason_rows]
    assert sorted(set(names)) == sorted(r.value for r in Reason)
    assert len(names) == len(set(names)), "a reason code has more than one row"
    wrong = {
        name: cells[0]
        for name, cells in reason_rows
        if cells[0] != ("failed" if Reason(name) in FAILED_REASONS else "unverifiable")
    }
    assert wrong == {}


def test_every_check_has_a_row(text: str) -> None:
    names = {name for name, _ in rows(section(text, "Checks"))}
    assert names == {c.value for c in Check} | EXTRA_CHECKS


def test_every_verdict_field_has_a_row(text: str) -> None:
    names = {name for name, _ in rows(section(text, "Fields"))}
    assert names == field_names()


def test_every_status_has_a_row(text: str) -> None:
    names = {name for name, _ in rows(section(text, "Status"))}
    assert names == {s.value for s in Status}


def test_reason_codes_named_elsewhere_on_the_page_exist(text: str) -> None:
    mentioned = {m for m in re.findall(r"`([^`]+)`", text) if _CODE.match(m)}
    assert mentioned - {r.value for r in Reason} == set()


def test_rows_reads_the_name_and_the_other_cells_of_table_rows_only() -> None:
    page = (
        "\n## Reason codes\nprose with `TIMEOUT`\n| code | class |\n|---|---|\n"
        "| `TIMEOUT` | failed | x |\n| `a` | b \\| c |\n## Next\n| `NONCE_MISMATCH` | y |\n"
    )
    assert rows(section(page, "Reason codes")) == [
        ("TIMEOUT", ["failed", "x", ""]),
        ("a", ["b \\| c", ""]),
    ]


def test_the_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)#]+\.md)\)", index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert pages - linked == set()
    assert {p for p in linked if not (DOCS / p).is_file()} == set()
