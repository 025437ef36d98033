"""``python -m redpill_integrations.emulator --protocol aci`` (what ``redpill emulator`` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.emulator.__main__ import build_parser


def test_protocol_flag_defaults_to_aci_and_refuses_unknown_values() -> None:
    assert build_parser().parse_args([]).protocol == "aci"
    assert build_parser().parse_args(["--protocol", "legacy"]).protocol == "legacy"
    assert build_parser().parse_args(["--protocol", "aci"]).protocol == "aci"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--protocol", "v2"])


def test_the_emulator_serves_aci_unless_told_legacy() -> None:
    with Emulator() as aci, Emulator(protocol="legacy") as legacy:
        assert (aci.protocol, legacy.protocol) == ("aci", "legacy")
        assert aci.config.protocol == "aci"
        answer = httpx.get(aci.origin + "/", timeout=10)
        assert answer.headers["x-aci-version"] == "aci/1"


def test_emulator_runs_the_aci_gateway_from_the_command_line(tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redpill_integrations.emulator",
            "--protocol",
            "aci",
            "--port",
            "0",
            "--seed",
            "cli",
            "--trust-out",
            str(trust),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.endswith("/v1"), base_url
        r = httpx.get(base_url.removesuffix("/v1") + "/", timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.headers["x-aci-version"] == "aci/1"
    assert r.json()["workload_keyset_digest"] == r.headers["x-aci-keyset-digest"]
    assert json.loads(trust.read_text())["kms_root_pubkeys"]


def test_aci_fault_flags_name_fields_of_faults() -> None:
    import dataclasses

    from redpill_integrations.emulator import Faults
    from redpill_integrations.emulator.__main__ import ACI_SWITCHES

    fields = {f.name for f in dataclasses.fields(Faults)}
    assert set(ACI_SWITCHES) <= fields
    args = build_parser().parse_args(
        ["--stale-served-at", "--receipt-not-ready", "3", "--receipt-mismatch", "model"]
    )
    assert (args.stale_served_at, args.receipt_not_ready, args.receipt_mismatch) == (
        True,
        3,
        "model",
    )
    assert args.custody_unknown_root is False and args.receipt_body_hash is None


def test_an_aci_fault_flag_reaches_the_served_gateway() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redpill_integrations.emulator",
            "--port",
            "0",
            "--missing-receipt-id",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        r = httpx.post(
            base_url + "/chat/completions",
            json={"model": "phala/gpt-oss-120b", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": "Bearer sk-test"},
            timeout=10,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.status_code == 200 and r.headers["x-aci-version"] == "aci/1"  # ACI by default
    assert "x-receipt-id" not in r.headers
