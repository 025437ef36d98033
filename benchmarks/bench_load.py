"""Memory over many verified calls: resident size must stay flat.

Driven with the verifier and the raw OpenAI SDK (``AsyncOpenAI`` over
``verifier.async_http_client()``, a few calls in flight) rather than through the framework
adapters: the adapters add no buffers of their own (they hand each exchange to the same verifier),
and the SDK alone lets 10,000 calls finish in well under a minute on two shared cores.
"""

from __future__ import annotations

import asyncio
import gc
import time

import openai
from bench_common import ServerProcess, Settings, Table, rss_bytes

from redpill_integrations.policy import TrustAnchors
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

PROMPT = [{"role": "user", "content": "Summarise verified provenance."}]
MB = 1024 * 1024


async def _run(
    server: ServerProcess, trust: TrustAnchors, key: str, model: str, s: Settings, table: Table
) -> None:
    verifier = RedpillVerifier(base_url=server.base_url, api_key=key, trust=trust)
    client = openai.AsyncOpenAI(
        base_url=server.base_url, api_key=key, http_client=verifier.async_http_client()
    )
    bad: list[str] = []

    async def calls(n: int) -> None:
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                tag = verifier.recorder.new_tag()
                await client.chat.completions.create(
                    model=model,
                    messages=PROMPT,  # type: ignore[arg-type]
                    extra_headers={CAPTURE_HEADER: tag},
                )
                result = await verifier.averify(verifier.recorder.take(tag))
                if result.status.value != "verified":
                    bad.append(",".join(r.value for r in result.reasons))

        await asyncio.gather(*(worker() for _ in range(s.memory_parallel)))

    await calls(s.memory_warmup)
    gc.collect()
    base = rss_bytes()
    points = [base]
    step = s.memory_calls if s.quick else max(1, s.memory_calls // 5)  # gc.collect() is slow
    t0 = time.perf_counter()
    done = 0
    while done < s.memory_calls:
        n = min(step, s.memory_calls - done)
        await calls(n)
        done += n
        gc.collect()
        points.append(rss_bytes())
        print(
            f"  ... {done} calls, RSS {points[-1] / MB:.1f} MB, "
            f"{done / (time.perf_counter() - t0):.0f} calls/s",
            flush=True,
        )
    wall = time.perf_counter() - t0
    growth = points[-1] - base
    sec = f"memory ({s.memory_calls} verified calls, 10 KB responses)"
    table.add(
        sec,
        "RSS after warm-up, then after each fifth of the calls",
        " -> ".join(f"{p / MB:.1f}" for p in points) + " MB",
    )
    table.add(sec, "RSS growth", f"{growth / MB:+.2f} MB", "< 5 MB", growth < 5 * MB)
    table.add(
        sec,
        "rate / recorder entries left",
        f"{s.memory_calls / wall:.0f} verified calls/s / {len(verifier.recorder)}",
    )
    if bad:
        table.error(f"memory: {len(bad)} calls not verified, e.g. {bad[0]}")
    await client.close()
    await verifier.aclose()


def memory(
    server: ServerProcess, trust: TrustAnchors, key: str, model: str, s: Settings, table: Table
) -> None:
    asyncio.run(_run(server, trust, key, model, s, table))
