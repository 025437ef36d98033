"""The benchmark's emulator, in its own process (so its CPU is never charged to the client).

Started by ``run.py`` (``bench_common.ServerProcess``): writes the emulator's trust file to
``--trust-out``, prints one line ``READY <base_url>`` once serving, and stops when its stdin closes.

``--network-rtt``/``--time-to-first-token``/``--time-per-token`` give the emulator realistic
latencies (the *realistic* concurrency rows); ``--protocol aci`` serves the ACI gateway (the ACI
rows).

Replies are scripted per model so each scenario gets a fixed response size:

* ``LATENCY_MODEL``: a text reply whose JSON body is about ``--body-bytes`` (10 KB);
* ``STREAM_MODEL``: a ``--stream-chars`` text reply, streamed ``--stream-interval`` s apart;
* ``SMALL_MODEL``: no script, the emulator's own short echo reply (concurrency).
"""

from __future__ import annotations

import argparse
import sys

LATENCY_MODEL = "phala/deepseek-chat-v3-0324"
STREAM_MODEL = "phala/qwen-2.5-7b-instruct"
SMALL_MODEL = "phala/gpt-oss-120b"

#: JSON envelope around the content (id, usage, ...) of the emulator's non-streamed answer
_ENVELOPE_BYTES = 330


def _text(n: int) -> str:
    words = "verified provenance for every answer served from a trusted execution environment "
    return (words * (n // len(words) + 1))[:n]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trust-out", required=True)
    p.add_argument("--stream-interval", type=float, default=0.01)
    p.add_argument("--body-bytes", type=int, default=10 * 1024)
    p.add_argument("--stream-chars", type=int, default=240)
    p.add_argument("--replies", type=int, default=20_000)
    p.add_argument("--network-rtt", type=float, default=0.0)
    p.add_argument("--time-to-first-token", type=float, default=0.0)
    p.add_argument("--time-per-token", type=float, default=0.0)
    p.add_argument("--protocol", choices=("legacy", "aci"), default="legacy")
    args = p.parse_args(argv)

    from redpill_integrations.emulator import Emulator, Reply

    emu = Emulator(
        seed="redpill-benchmarks",
        stream_interval=args.stream_interval,
        network_rtt=args.network_rtt,
        time_to_first_token=args.time_to_first_token,
        time_per_token=args.time_per_token,
        protocol=args.protocol,
    )
    big = Reply.text(_text(max(1, args.body_bytes - _ENVELOPE_BYTES)))
    emu.script(model=LATENCY_MODEL, replies=[big] * args.replies)
    emu.script(model=STREAM_MODEL, replies=[Reply.text(_text(args.stream_chars))] * args.replies)
    emu.write_trust_file(args.trust_out)
    emu.start()
    print(f"READY {emu.base_url}", flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin to stop us
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
