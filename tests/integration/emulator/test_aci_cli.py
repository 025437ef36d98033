"""``python -m redpill_integrations.emulator --protocol aci`` (what ``redpill emulator`` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from redpill_integrations.emulator.__main__ import build_parser


def test_protocol_flag_defaults_to_legacy_and_refuses_unknown_values() -> None:
    assert build_parser().parse_args([]).protocol == "legacy"
    assert build_parser().parse_args(["--protocol", "aci"]).protocol == "aci"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--protocol", "v2"])


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
