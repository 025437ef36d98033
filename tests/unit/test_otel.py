"""record_verdict: the verdict on the current span (exact attributes) and a counter by cause."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

from redpill_integrations.otel import record_verdict, span_attributes
from redpill_integrations.results import Reason, Status, VerificationResult
from tests.integration.stores._receipts import NOW, aci
from tests.support_otel import telemetry, verdict_counts

ROOT = Path(__file__).resolve().parents[2]


def verified() -> VerificationResult:
    return VerificationResult.unverifiable(
        Reason.SIGNATURE_UNAVAILABLE, chat_id="chatcmpl-1", model="phala/m", verified_at=NOW
    ).with_updates(status=Status.VERIFIED, reasons=(), receipt_id="rid-1", signer="0xabc")


def test_the_current_span_carries_the_verdict() -> None:
    exporter, _ = telemetry()
    exporter.clear()
    with trace.get_tracer("test").start_as_current_span("llm call"):
        record_verdict(verified())
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "redpill.verification.status": "verified",
        "redpill.verification.reasons": (),
        "redpill.verification.protocol": "legacy",
        "redpill.verification.receipt_id": "rid-1",
        "redpill.verification.signer": "0xabc",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "phala/m",
    }


def test_an_aci_verdict_names_its_protocol_and_upstream_provider() -> None:
    base = VerificationResult.unverifiable(Reason.SIGNATURE_UNAVAILABLE, chat_id="c").with_updates(
        reasons=(Reason.SIGNATURE_UNAVAILABLE, Reason.TIMEOUT)
    )
    result = aci(base, protocol="aci", provider="near")
    attrs = span_attributes(result)
    assert attrs["redpill.verification.protocol"] == "aci"
    assert attrs["redpill.verification.upstream.provider"] == "near"
    assert attrs["redpill.verification.status"] == "unverifiable"
    assert attrs["redpill.verification.reasons"] == ["SIGNATURE_UNAVAILABLE", "TIMEOUT"]
    assert "redpill.verification.receipt_id" not in attrs  # absent values are left out


def test_verdicts_are_counted_by_status_and_first_reason() -> None:
    _, reader = telemetry()
    before = verdict_counts(reader)
    record_verdict(verified())
    record_verdict(verified())
    record_verdict(
        VerificationResult.unverifiable(Reason.SIGNATURE_UNAVAILABLE, chat_id="c").with_updates(
            reasons=(Reason.SIGNATURE_UNAVAILABLE, Reason.TIMEOUT)
        )
    )
    after = verdict_counts(reader)

    def delta(key: tuple[str, str]) -> int:
        return after.get(key, 0) - before.get(key, 0)

    assert delta(("verified", "none")) == 2
    assert delta(("unverifiable", "SIGNATURE_UNAVAILABLE")) == 1
    assert delta(("unverifiable", "TIMEOUT")) == 0


class Exploding(VerificationResult):
    def to_dict(self):  # type: ignore[no-untyped-def]
        raise AssertionError("serialised although no span records")


def test_without_a_recording_span_the_verdict_is_not_even_serialised() -> None:
    telemetry()
    result = Exploding(status=Status.VERIFIED, reasons=(), checks={})  # type: ignore[call-arg]
    assert not trace.get_current_span().is_recording()
    record_verdict(result)  # the counter still counts, from the status and reasons alone


def test_telemetry_errors_never_reach_the_call(caplog: pytest.LogCaptureFixture) -> None:
    exporter, _ = telemetry()
    exporter.clear()
    caplog.set_level(logging.DEBUG, logger="redpill_integrations.otel")
    with trace.get_tracer("test").start_as_current_span("llm call"):
        record_verdict(Exploding(status=Status.VERIFIED, reasons=(), checks={}))  # type: ignore[call-arg]
    assert "could not record the verdict in OpenTelemetry" in caplog.text
    (span,) = exporter.get_finished_spans()
    assert "redpill.verification.status" not in (span.attributes or {})


def test_without_the_otel_api_it_is_a_no_op() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from redpill_integrations.otel import record_verdict\n"
        "from redpill_integrations.results import VerificationResult, Reason\n"
        "record_verdict(VerificationResult.unverifiable(Reason.TIMEOUT))\n"
        "import redpill_integrations.otel as o; assert o._trace is None and o._counter is None\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr
