"""Starting and stopping: async context manager, the foreground CLI, the fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import TrustAnchors


async def test_async_context_manager_and_fast_start() -> None:
    start = time.process_time()  # CPU time: robust on a busy shared runner
    async with Emulator(seed="async", protocol="legacy") as emu:
        assert time.process_time() - start < 1.0
        async with httpx.AsyncClient() as c:
            r = await c.get(
                f"{emu.base_url}/models", headers={"Authorization": f"Bearer {emu.api_key}"}
            )
        assert r.status_code == 200 and r.headers["x-redpill-emulator"] == "1"
        port = emu.port
    # stopped: the port no longer answers
    async with httpx.AsyncClient(timeout=1) as c:
        try:
            await c.get(f"http://127.0.0.1:{port}/v1/models")
            refused = False
        except httpx.TransportError:
            refused = True
    assert refused
    assert "NOT a real TEE" in repr(emu)


def test_cli_runs_in_foreground_and_writes_trust_file(tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redpill_integrations.emulator",
            "--port",
            "0",
            "--trust-out",
            str(trust),
            "--signature-not-ready",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        anchors = TrustAnchors.from_file(trust)
        assert anchors.base_url == base_url and anchors.kind == "redpill-emulator"
        assert json.loads(trust.read_text())["pccs_url"] == base_url.removesuffix("/v1")
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(f"{base_url}/models", headers={"Authorization": "Bearer k"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emu_fixture_resets_state(emu: Emulator) -> None:
    assert emu.stats.chat_requests == 0 and not emu.stats.signature_lookups
