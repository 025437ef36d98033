"""`redpill receipts list|show|export|verify` against either backend (``--store URL``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redpill_integrations.cli import EXIT_CODES, main
from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.stores import ReceiptStore
from tests.support_postgres import free_port

from ._sql import execute
from .test_tamper import _edit_response

MODEL = "phala/deepseek-chat-v3-0324"


@pytest.fixture
def trust(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "trust.json"
    emu.write_trust_file(path)
    monkeypatch.setenv("REDPILL_API_KEY", "sk-cli-stores")
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    monkeypatch.delenv("REDPILL_TRUST_FILE", raising=False)
    monkeypatch.delenv("REDPILL_RECEIPTS", raising=False)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _chats(capsys: pytest.CaptureFixture[str], trust: str, url: str, n: int) -> list[str]:
    for i in range(n):
        code, _, _ = run(capsys, "chat", f"hi {i}", "--model", MODEL, "--json",
                         "--trust", trust, "--store", url)  # fmt: skip
        assert code == 0
    code, out, _ = run(capsys, "receipts", "list", "--json", "--store", url)
    assert code == 0
    return [row["receipt_id"] for row in json.loads(out)]


def test_list_show_export_and_verify_all_on_either_backend(
    store_url: str, trust: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ids = _chats(capsys, trust, store_url, 3)
    assert len(ids) == 3
    code, out, _ = run(capsys, "receipts", "list", "--json", "--model", "phala/none",
                       "--store", store_url)  # fmt: skip
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(capsys, "receipts", "list", "--json", "--protocol", "legacy",
                       "--status", "verified", "--store", store_url)  # fmt: skip
    assert len(json.loads(out)) == 3
    code, out, _ = run(capsys, "receipts", "show", ids[0], "--store", store_url)
    assert code == 0 and ids[0] in out
    export = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "receipts", "export", "--out", str(export), "--store", store_url)
    assert code == 0 and "exported 3 receipt(s)" in err
    assert [json.loads(x)["receipt_id"] for x in export.read_text().splitlines()] == ids[::-1]

    code, out, _ = run(capsys, "receipts", "verify", "--all", "--store", store_url,
                       "--trust", trust)  # fmt: skip
    assert code == EXIT_CODES["verified"]
    assert out == "3 receipts re-verified offline (verified: 3)\nall verdicts unchanged\n"

    code, out, _ = run(capsys, "receipts", "verify", ids[1], "--store", store_url,
                       "--trust", trust)  # fmt: skip
    assert code == 0 and "verdict     VERIFIED" in out

    _edit_response(store_url, ids[1])  # a row edited in the database
    code, out, _ = run(capsys, "receipts", "verify", "--all", "--store", store_url,
                       "--trust", trust)  # fmt: skip
    assert code == EXIT_CODES["failed"]
    assert out.splitlines() == [
        "3 receipts re-verified offline (failed: 1, verified: 2)",
        f"  CHANGED {ids[1]}: verified -> failed RESPONSE_HASH_MISMATCH",
        "1 changed, 0 unreadable",
    ]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(VerificationPolicy().to_dict()))
    code, out, _ = run(capsys, "receipts", "verify", "--all", "--json", "--policy", str(policy),
                       "--store", store_url, "--trust", trust)  # fmt: skip
    report = json.loads(out)
    assert code == 1 and report["clean"] is False and report["total"] == 3
    assert report["changed"] == [
        {"receipt_id": ids[1], "was": "verified", "now": "failed",
         "reasons": ["RESPONSE_HASH_MISMATCH"]}
    ]  # fmt: skip
    assert report["unreadable"] == []
    execute(store_url, "UPDATE {receipts} SET body = '[' WHERE receipt_id = ?", (ids[2],))
    code, out, _ = run(capsys, "receipts", "verify", "--all", "--store", store_url,
                       "--trust", trust)  # fmt: skip
    assert code == 1 and f"  UNREADABLE {ids[2]}: stored receipt is corrupt" in out


def test_verify_needs_an_id_or_all(
    store_url: str, trust: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "receipts", "verify", "--store", store_url)[0] == EXIT_CODES["usage"]
    code = run(capsys, "receipts", "verify", "x", "--all", "--store", store_url)[0]
    assert code == EXIT_CODES["usage"]


def test_an_unreadable_policy_file_is_a_configuration_error(
    tmp_path: Path, trust: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text("[1]")
    code, _, err = run(capsys, "receipts", "verify", "--all", "--policy", str(bad),
                       "--store", str(tmp_path / "r.sqlite3"), "--trust", trust)  # fmt: skip
    assert code == EXIT_CODES["error"]
    assert f"cannot read the policy file {bad}" in err


def test_a_database_that_is_down_names_the_url_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://auditor:hunter2-pw@127.0.0.1:{free_port()}/receipts"
    code, out, err = run(capsys, "receipts", "list", "--store", url)
    assert code == EXIT_CODES["error"]
    assert "hunter2-pw" not in out + err
    assert "postgresql://auditor:***@127.0.0.1:" in err


def test_the_environment_may_name_a_postgres_store(
    pg_cluster: object, trust: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    url = pg_cluster.create_database()  # type: ignore[attr-defined]
    monkeypatch.setenv("REDPILL_RECEIPTS", url)
    code, _, _ = run(capsys, "chat", "hi", "--model", MODEL, "--trust", trust)
    assert code == 0
    with ReceiptStore.open(url) as store:
        assert len(store) == 1
