"""Faults parsing/merging, tamper helpers, reply rendering and the CLI parser."""

from __future__ import annotations

import json

import pytest

from redpill_integrations.emulator import Faults, Reply, main
from redpill_integrations.emulator.__main__ import build_parser
from redpill_integrations.emulator.faults import FaultsHeaderError, parse_faults_header
from redpill_integrations.emulator.model import render_json, render_sse_events
from redpill_integrations.emulator.tamper import tamper_json, tamper_sse


def test_signature_fault_windows() -> None:
    f = Faults(signature_not_ready=2, rate_limited=1, error_code_envelope=1)
    assert [f.signature_fault(i) for i in range(5)] == [
        "not_ready",
        "not_ready",
        "rate_limited",
        "error_code_envelope",
        None,
    ]


def test_merge_and_header_round_trip() -> None:
    base = Faults(signature_not_ready=1, retry_after=None)
    merged = base.merged(Faults(gpu_wrong_nonce=True))
    assert merged.signature_not_ready == 1 and merged.gpu_wrong_nonce
    assert merged.retry_after is None
    assert parse_faults_header(merged.to_header()) == merged
    assert parse_faults_header(None) is None
    with pytest.raises(ValueError, match="unknown fault fields"):
        parse_faults_header('{"bogus": true}')
    for bad in (
        "[1]",
        "{",
        '{"signature_not_ready": "2"}',
        '{"foreign_signer": 1}',
        '{"tamper_response": "explode"}',
        '{"wrong_node": 1.5}',
    ):
        with pytest.raises(FaultsHeaderError):
            parse_faults_header(bad)
    assert parse_faults_header('{"retry_after": null, "signature_ttl": 0}') == Faults(
        retry_after=None, signature_ttl=0
    )


def test_sse_layout_and_tamper_modes() -> None:
    events = render_sse_events(
        "chatcmpl-x", "m", Reply.text("hello world, a longer reply"), [], include_usage=True
    )
    assert events[-1] == b"data: [DONE]\n\n"
    assert json.loads(events[-2][6:])["usage"]["total_tokens"] > 0
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in events)
    assert tamper_sse(events, None) == events
    assert len(tamper_sse(events, "inject")) == len(events) + 1
    assert len(tamper_sse(events, "drop")) == len(events) - 1
    reordered = tamper_sse(events, "reorder")
    assert sorted(reordered) == sorted(events) and reordered != events
    assert tamper_sse(events, "alter")[1] != events[1]


def test_json_reply_and_tamper() -> None:
    body = render_json("chatcmpl-y", "m", Reply.text("hi", reasoning="why"), [])
    data = json.loads(body)
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hi",
        "reasoning_content": "why",
    }
    assert json.loads(tamper_json(body, "alter"))["choices"][0]["message"]["content"] != "hi"


def test_cli_refuses_non_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err
    args = build_parser().parse_args(["--rate-limited", "2", "--tamper-response", "drop"])
    assert args.rate_limited == 2 and args.tamper_response == "drop"
