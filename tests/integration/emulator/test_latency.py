"""Latency knobs: network round trip, time to first token, time per token (asyncio sleeps).

Only lower bounds are asserted tightly (a shared CI machine can always be slower); the upper
bounds are loose and only show that the waits do not add up serially or block the server."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from redpill_integrations.emulator import Emulator, Reply
from redpill_integrations.emulator.__main__ import build_parser
from redpill_integrations.emulator.latency import generation_time, stream_event_interval
from redpill_integrations.emulator.model import completion_tokens
from redpill_integrations.errors import ConfigurationError

from ._raw import chat, chat_body, client

TEXT = "x" * 40  # 10 completion tokens


def test_network_rtt_is_added_to_every_exchange(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(network_rtt=0.2, protocol="legacy")
    with client(emu) as c:
        for path in ("/models", "/attestation/report?model=phala/gpt-oss-120b"):
            start = time.monotonic()
            assert c.get(path).status_code == 200
            assert time.monotonic() - start >= 0.2
        start = time.monotonic()
        assert httpx.get(emu.nras_jwks_url, timeout=10).status_code == 200
        assert time.monotonic() - start >= 0.2


def test_json_answer_waits_for_the_whole_generation(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(
        network_rtt=0.05, time_to_first_token=0.1, time_per_token=0.02, protocol="legacy"
    )
    emu.script(replies=[Reply.text(TEXT)])
    assert completion_tokens(Reply.text(TEXT)) == 10
    with client(emu) as c:
        start = time.monotonic()
        chat(c, chat_body(stream=False))
        assert time.monotonic() - start >= 0.05 + 0.1 + 10 * 0.02


def test_stream_sends_headers_at_once_and_tokens_over_time(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    # the client reads late on a loaded machine, which only bunches what it sees: the waits are
    # long enough that a late first read (0.6 s was seen) cannot hide them
    emu = emulator_factory(time_to_first_token=1.0, time_per_token=0.15, protocol="legacy")
    emu.script(replies=[Reply.text(TEXT)])
    with client(emu) as c:
        start = time.monotonic()
        with c.stream(
            "POST",
            "/chat/completions",
            content=chat_body(stream=True),
            headers={"Content-Type": "application/json"},
        ) as r:
            headers_at = time.monotonic() - start
            arrivals = [time.monotonic() - start for _ in r.iter_raw()]
    assert headers_at < 0.9  # the headers do not wait for the first token
    assert arrivals[0] >= 1.0
    # the 10 tokens' 1.5 s are spread between the events (none after the last one)
    assert arrivals[-1] - arrivals[0] >= 0.75


async def test_waits_do_not_block_the_server(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = emulator_factory(time_to_first_token=0.5, protocol="legacy")
    async with httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10
    ) as c:
        start = time.monotonic()
        answers = await asyncio.gather(
            *(c.post("/chat/completions", content=chat_body(stream=False)) for _ in range(4))
        )
        elapsed = time.monotonic() - start
    assert [a.status_code for a in answers] == [200] * 4
    assert 0.5 <= elapsed < 1.5  # four 0.5 s waits overlap instead of adding up to 2 s


def test_latency_defaults_and_arithmetic() -> None:
    assert generation_time(time_to_first_token=0.0, time_per_token=0.0, tokens=100) == 0.0
    assert generation_time(time_to_first_token=0.5, time_per_token=0.01, tokens=30) == 0.8
    assert (
        stream_event_interval(stream_interval=0.1, time_per_token=0.02, tokens=50, events=10) == 0.2
    )


def test_negative_latency_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="durations must not be negative"):
        Emulator(time_per_token=-1)


def test_cli_flags() -> None:
    args = build_parser().parse_args(
        ["--network-rtt", "0.08", "--time-to-first-token", "0.4", "--time-per-token", "0.02"]
    )
    assert (args.network_rtt, args.time_to_first_token, args.time_per_token) == (0.08, 0.4, 0.02)
    defaults = build_parser().parse_args([])
    assert (defaults.network_rtt, defaults.time_to_first_token, defaults.time_per_token) == (
        0.0,
        0.0,
        0.0,
    )
