"""CPU bounds of the ACI path (the ``perf`` tier): the per-call judgement with the gateway's
identity cached (≤ 1 ms) and a cold gateway identity (≤ 50 ms), on an emulator exchange."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.verify.aci import parse_aci_report, verify_gateway
from redpill_integrations.verify.aci.bundle import judge_evidence
from tests.integration.wire.test_aci_wire import Rig

pytestmark = pytest.mark.perf


def _median(fn: Callable[[], Any], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return statistics.median(times)


def test_aci_cpu_per_verified_call_and_cold_attestation(aci_emu: Emulator, tmp_path: Path) -> None:
    rig = Rig(aci_emu, tmp_path)
    receipt = rig.chat(stream=True)
    rig.verifier.close()
    aci, policy, trust = receipt.aci, VerificationPolicy(), aci_emu.trust
    assert aci is not None and aci.report is not None and aci.nonce is not None
    assert receipt.request_body is not None and receipt.response_body is not None
    report, nonce, at = aci.report, aci.nonce, receipt.result.verified_at
    assert at is not None

    def cold() -> Any:
        return verify_gateway(
            parse_aci_report(report), nonce=nonce, collateral_json=aci.collateral_json,
            policy=policy, trust=trust, now=at,
        )  # fmt: skip

    gateway = cold()
    assert not gateway.reasons

    def per_call() -> Any:
        return judge_evidence(
            aci, request_body=receipt.request_body or b"", response_body=receipt.response_body
            or b"", chat_id=receipt.chat_id, model=receipt.model,
            started_at=receipt.exchange_started_at or at, finished_at=receipt.exchange_finished_at
            or at, policy=policy, trust=trust, now=at, gateway=gateway,
        )  # fmt: skip

    assert per_call().status.value == "verified"
    warm, fresh = _median(per_call, 200), _median(cold, 10)
    print(f"ACI CPU: per verified call {warm * 1e3:.3f} ms, cold gateway {fresh * 1e3:.1f} ms")
    assert warm < 1e-3
    assert fresh < 50e-3
