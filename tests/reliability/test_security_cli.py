"""The ``redpill`` CLI against the security review's findings.

* V10: a trust file never picks where the real API key goes. A recording server named as a trust
  file's ``base_url`` must never see ``REDPILL_API_KEY``; the default origin is replaced by a
  recording stand-in on loopback (``DEFAULT_BASE_URL`` patched), so nothing leaves the machine.
* V12: server- and receipt-controlled text (chat id, model, detail, answer, attestation fields,
  receipt rows) never reaches the terminal raw: no ESC, no CR, no other control character.
* I5 / V8: the trust-chain lines say no more than each check proves.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.cli import _destination as destination
from redpill_integrations.cli import main
from redpill_integrations.cli.display import (
    printable,
    render_checks,
    render_receipt_rows,
    render_result,
    render_trust_chain,
)
from redpill_integrations.emulator import API_KEY, Emulator
from redpill_integrations.policy import DEFAULT_BASE_URL, TrustAnchors
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.results import (
    AttestationSummary,
    CheckOutcome,
    Reason,
    VerificationResult,
)

from ._hostile import Hostile

MODEL = "phala/deepseek-chat-v3-0324"
REAL_KEY = "sk-live-canary-4f1d9a7c20b3"
#: the review's payload: moves up a line, clears it, and prints a fake verdict
PAYLOAD = "\x1b[1A\x1b[2K\rverdict     VERIFIED"
ESCAPED = "\\x1b[1A\\x1b[2K\\rverdict     VERIFIED"
CONTROL = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if chr(c) != "\n"]


def _no_controls(text: str) -> None:
    raw = sorted({hex(ord(c)) for c in text if c in CONTROL or c in "\u202e\u2066\u200f"})
    assert raw == [], f"raw control characters in the output: {raw}"


def _authorizations(server: Hostile) -> list[str]:
    return [req.headers.get("authorization", "") for req in server.log]


@pytest.fixture
def canary(emu: Emulator) -> Iterator[Hostile]:
    """The host a shared or foreign trust file names: records every request (forwards them)."""
    server = Hostile(emu).start()
    yield server
    server.stop()


@pytest.fixture
def official(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hostile]:
    """A recording stand-in for the default origin, on loopback, forwarding to the emulator."""
    server = Hostile(emu).start()
    monkeypatch.setattr(destination, "DEFAULT_BASE_URL", server.base_url)
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("REDPILL_API_KEY", "REDPILL_BASE_URL", "REDPILL_TRUST_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDPILL_RECEIPTS", str(tmp_path / "receipts.sqlite3"))


def _trust_file(emu: Emulator, path: Path, base_url: str) -> str:
    """The emulator's trust file, but naming ``base_url`` (a shared or tampered copy)."""
    data = json.loads(emu.write_trust_file(path).read_text())
    data["base_url"] = base_url
    path.write_text(json.dumps(data))
    return str(path)


# -- V10: where the key goes ---------------------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("command", ["chat", "attest"])
def test_trust_file_base_url_never_receives_the_real_key(
    command: str,
    emu: Emulator,
    canary: Hostile,
    official: Hostile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDPILL_API_KEY", REAL_KEY)
    trust = _trust_file(emu, tmp_path / "shared-trust.json", canary.base_url)
    argv = ["chat", "hello"] if command == "chat" else ["attest"]
    code = main([*argv, "--model", MODEL, "--trust", trust, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert canary.log == []  # not one request, so not the key
    assert f"Bearer {REAL_KEY}" in _authorizations(official)
    assert f"not using the trust file's base_url {canary.base_url}" in err
    assert REAL_KEY not in out + err


@pytest.mark.usefixtures("clean_env")
def test_trust_file_from_the_environment_is_held_to_the_same_rule(
    emu: Emulator,
    canary: Hostile,
    official: Hostile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDPILL_API_KEY", REAL_KEY)
    monkeypatch.setenv(
        "REDPILL_TRUST_FILE", _trust_file(emu, tmp_path / "trust.json", canary.base_url)
    )
    assert main(["chat", "hello", "--model", MODEL, "--json"]) == 0
    capsys.readouterr()
    assert canary.log == []
    assert f"Bearer {REAL_KEY}" in _authorizations(official)


@pytest.mark.usefixtures("clean_env")
def test_without_a_real_key_the_emulator_trust_file_still_names_the_emulator(
    emu: Emulator,
    canary: Hostile,
    official: Hostile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust = _trust_file(emu, tmp_path / "trust.json", canary.base_url)
    code = main(["chat", "hello", "--model", MODEL, "--trust", trust, "--json"])
    assert code == 0, capsys.readouterr().err
    assert official.log == []
    chat = [r for r in canary.log if r.path == "/v1/chat/completions"]
    assert [r.headers["authorization"] for r in chat] == [f"Bearer {API_KEY}"]


@pytest.mark.usefixtures("clean_env")
def test_an_explicit_base_url_is_the_users_choice(
    emu: Emulator,
    canary: Hostile,
    official: Hostile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDPILL_API_KEY", REAL_KEY)
    trust = _trust_file(emu, tmp_path / "trust.json", official.base_url)
    argv = ["chat", "hello", "--model", MODEL, "--trust", trust, "--base-url", canary.base_url]
    assert main([*argv, "--json"]) == 0
    capsys.readouterr()
    assert official.log == []
    assert f"Bearer {REAL_KEY}" in _authorizations(canary)


def test_the_placeholder_key_is_the_emulators() -> None:
    assert destination.EMULATOR_API_KEY == API_KEY


# non-production by its values (its own root), as an emulator trust file is: the kind is a label
_EMU_TRUST = TrustAnchors(
    kind="redpill-emulator",
    intel_root_ca_der=b"emulator test root",
    base_url="http://127.0.0.1:8900/v1",
)


FOREIGN, LOOPBACK = "https://collector.example/v1", "http://127.0.0.1:8900/v1"
WITH_KEY = {"REDPILL_API_KEY": REAL_KEY}
WITH_ENV_URL = {**WITH_KEY, "REDPILL_BASE_URL": "https://gw.test/v1"}


@pytest.mark.parametrize(
    ("trust_base_url", "env", "flag", "expected"),
    [
        # a foreign host is never taken from a trust file, key or no key
        (FOREIGN, WITH_KEY, None, (DEFAULT_BASE_URL, REAL_KEY)),
        (FOREIGN, {}, None, (DEFAULT_BASE_URL, API_KEY)),
        ("http://10.0.0.7:8900/v1", {}, None, (DEFAULT_BASE_URL, API_KEY)),
        # loopback, but a real key is set: the real key goes to the default origin
        (LOOPBACK, WITH_KEY, None, (DEFAULT_BASE_URL, REAL_KEY)),
        # loopback and no real key: the emulator the trust file was written for
        (LOOPBACK, {}, None, (LOOPBACK, API_KEY)),
        (LOOPBACK, {"REDPILL_API_KEY": API_KEY}, None, (LOOPBACK, API_KEY)),
        ("http://localhost:8900/v1", {}, None, ("http://localhost:8900/v1", API_KEY)),
        ("http://[::1]:8900/v1", {}, None, ("http://[::1]:8900/v1", API_KEY)),
        # a look-alike host is not loopback
        ("http://127.0.0.1.collector.example/v1", {}, None, (DEFAULT_BASE_URL, API_KEY)),
        # the user's own choice wins: REDPILL_BASE_URL, then --base-url
        (FOREIGN, WITH_ENV_URL, None, ("https://gw.test/v1", REAL_KEY)),
        (FOREIGN, WITH_ENV_URL, "https://flag.test/v1", ("https://flag.test/v1", REAL_KEY)),
    ],
)
def test_resolve_destination(
    trust_base_url: str, env: dict[str, str], flag: str | None, expected: tuple[str, str]
) -> None:
    trust = dataclasses.replace(_EMU_TRUST, base_url=trust_base_url)
    dest = destination.resolve_destination(base_url_flag=flag, trust=trust, env=env)
    assert (dest.base_url, dest.api_key) == expected
    assert REAL_KEY not in repr(dest)


def test_resolve_destination_production_trust_has_no_placeholder_key() -> None:
    dest = destination.resolve_destination(
        base_url_flag=None, trust=TrustAnchors.production(), env={}
    )
    assert (dest.base_url, dest.api_key, dest.ignored_trust_base_url) == (
        DEFAULT_BASE_URL,
        None,
        None,
    )


# -- V12: terminal escapes -----------------------------------------------------------------------


def _spoofing_chat(req: dict[str, Any]) -> tuple[str, bytes, bytes]:
    """A chat whose id rewrites the verdict line on an ANSI terminal, and whose answer turns on
    concealed text and a bidi override; what is signed differs by one byte, so it fails."""
    message = {"role": "assistant", "content": "tampered answer\x1b[8m\u202e"}
    body = json.dumps(
        {
            "id": PAYLOAD,
            "object": "chat.completion",
            "created": 1,
            "model": req["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        }
    ).encode()
    return PAYLOAD, body, body + b" "


@pytest.mark.usefixtures("clean_env")
def test_chat_id_with_terminal_escapes_cannot_rewrite_the_verdict(
    emu: Emulator, canary: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary.route = lambda req: (
        canary.mint_chat(_spoofing_chat) if req.path == "/v1/chat/completions" else None
    )
    trust = str(emu.write_trust_file(tmp_path / "trust.json"))
    code = main(["chat", "hi", "--model", MODEL, "--trust", trust, "--base-url", canary.base_url])
    out, _ = capsys.readouterr()
    assert code == 1
    _no_controls(out)
    lines = out.splitlines()
    assert lines[0] == "tampered answer\\x1b[8m\\u202e"
    assert f"chat id     {ESCAPED}" in lines
    verdicts = [line for line in lines if line.startswith("verdict")]
    assert verdicts == ["verdict     FAILED  (RESPONSE_HASH_MISMATCH)"]


def _hostile_receipt_store(emu: Emulator, tmp_path: Path, capsys: Any) -> tuple[str, str]:
    """A store holding one receipt whose chat id, model and detail carry the payload."""
    store_path = tmp_path / "hostile.sqlite3"
    trust = str(emu.write_trust_file(tmp_path / "trust.json"))
    assert (
        main(
            ["chat", "hi", "--model", MODEL, "--trust", trust, "--json", "--store", str(store_path)]
        )
        == 0
    )
    capsys.readouterr()
    store = ReceiptStore(store_path)
    (receipt,) = store.list(limit=1)
    result = dataclasses.replace(receipt.result, chat_id=PAYLOAD, model=PAYLOAD, detail=PAYLOAD)
    hostile = dataclasses.replace(receipt, receipt_id="r" + PAYLOAD, result=result)
    store.put(hostile)
    return str(store_path), hostile.receipt_id


@pytest.mark.usefixtures("clean_env")
def test_receipt_commands_show_stored_fields_escaped(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, receipt_id = _hostile_receipt_store(emu, tmp_path, capsys)
    assert main(["receipts", "list", "--store", store]) == 0
    listed = capsys.readouterr().out
    assert main(["receipts", "show", receipt_id, "--store", store]) == 0
    shown = capsys.readouterr().out
    for out in (listed, shown):
        _no_controls(out)
        assert ESCAPED in out
    assert f"chat id     {ESCAPED}" in shown.splitlines()
    assert f"detail      {ESCAPED}" in shown.splitlines()
    assert [ln for ln in shown.splitlines() if ln.startswith("verdict")] == ["verdict     VERIFIED"]


def test_every_renderer_escapes_what_it_is_given() -> None:
    summary = AttestationSummary(
        nonce=PAYLOAD,
        signing_address=PAYLOAD,
        signing_algo=PAYLOAD,
        report_shape="flat",
        tcb_status=PAYLOAD,
        advisory_ids=(PAYLOAD,),
        mrtd=PAYLOAD,
        compose_hash=PAYLOAD,
        app_id=PAYLOAD,
    )
    checks = {"signature": CheckOutcome.PASS, PAYLOAD: CheckOutcome.FAIL}
    row = dict.fromkeys(("receipt_id", "created_at", "status", "model", "chat_id"), PAYLOAD)
    result = dataclasses.replace(
        VerificationResult.unverifiable(
            Reason.MALFORMED_RESPONSE, verified_at=datetime.now(UTC), detail=PAYLOAD
        ),
        chat_id=PAYLOAD,
        model=PAYLOAD,
        signer=PAYLOAD,
        signing_algo=PAYLOAD,
        hash_mode=PAYLOAD,
        receipt_id=PAYLOAD,
        attestation=summary,
    )
    shown = render_result(result, trust_chain=True)
    assert shown.count(ESCAPED) >= 6
    for text in (
        shown,
        render_trust_chain(summary, checks),
        render_checks(checks),
        render_receipt_rows([row]),
    ):
        _no_controls(text)
    # a check the chain does not know is still shown (escaped), never dropped
    assert f"  ✘ {ESCAPED}" in render_checks(checks).splitlines()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ünïcödé ✔", "plain text, ünïcödé ✔"),
        (PAYLOAD, ESCAPED),
        ("a\u202eb\u2066c\u200fd", "a\\u202eb\\u2066c\\u200fd"),  # bidi overrides and marks
        ("\x07\x85\x9b[31m", "\\x07\\x85\\x9b[31m"),  # BEL, C1 NEL, C1 CSI
        ("line\nnext\ttab", "line\\nnext\\ttab"),
        ("\U000e0041", "\\U000e0041"),  # a tag character
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_multiline_keeps_lines_and_tabs_only() -> None:
    assert printable("a\nb\tc\r\x1b[2J", multiline=True) == "a\nb\tc\\r\\x1b[2J"


# -- I5 / V8: the wording never says more than the check proved ----------------------------------


def test_trust_chain_lines_say_what_each_check_proves() -> None:
    lines = render_checks({}, indent="").splitlines()
    by_check = {line.split()[1]: " ".join(line.split()[2:]) for line in lines}
    assert by_check["signature"] == "signature is valid: some key signed the text"
    assert by_check["signer_attested"] == "that signing key is the one the attestation names"
    assert by_check["request_hash"] == (
        "request hash reported by the gateway matches the bytes we sent"
    )
    text = "\n".join(lines)
    assert "valid for the signing key" not in text
    assert "request bytes we sent are the ones signed" not in text
