"""Verified adapters against plain clients, same emulator, same run, calls interleaved.

Pairs: ``ChatRedpill`` vs langchain-openai's ``ChatOpenAI``, and ``Redpill`` vs llama-index's
``OpenAILike(is_chat_model=True)``. Every verified call's verdict is checked (a benchmark of
failing verifications would measure the wrong thing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from bench_common import CpuMeter, ServerProcess, Settings, Table, TimingTransport, median, ms
from pydantic import SecretStr

from redpill_integrations.policy import TrustAnchors
from redpill_integrations.wire import RedpillVerifier

PROMPT = "Summarise verified provenance."
VERDICT = "redpill_verification"


@dataclasses.dataclass
class Client:
    """One side of a pair: how to call it and how to read its verdict (None for plain)."""

    name: str
    invoke: Callable[[], Any]
    stream: Callable[[], Iterator[tuple[str, dict[str, Any] | None]]]
    ainvoke: Callable[[], Awaitable[Any]]
    verdict: Callable[[Any], dict[str, Any] | None]
    astream: Callable[[], AsyncIterator[tuple[str, dict[str, Any] | None]]]


@dataclasses.dataclass
class Pair:
    framework: str
    verified: Client
    plain: Client
    timing: TimingTransport  # the verifier's fetch transport: signature round trips
    failures: list[str] = dataclasses.field(default_factory=list)
    checked: int = 0

    def check(self, verdict: dict[str, Any] | None) -> None:
        self.checked += 1
        status = verdict.get("status") if verdict else None
        if status != "verified":
            reasons = verdict.get("reasons") if verdict else "no verdict"
            self.failures.append(f"{status}: {reasons}")

    def report(self, section: str, table: Table) -> None:
        """Every verified call must have been ``verified``; anything else is an error."""
        ok = self.checked - len(self.failures)
        table.add(section, "verified verdicts", f"{ok}/{self.checked}")
        if self.failures:
            table.error(
                f"{section}: {len(self.failures)} calls not verified, e.g. {self.failures[0]}"
            )
        self.failures.clear()
        self.checked = 0


# --- building the pairs ------------------------------------------------------------------------


def _verifier(
    server: ServerProcess, trust: TrustAnchors, key: str
) -> tuple[RedpillVerifier, TimingTransport]:
    timing = TimingTransport()
    verifier = RedpillVerifier(base_url=server.base_url, api_key=key, trust=trust, transport=timing)
    return verifier, timing


def langchain_pair(server: ServerProcess, trust: TrustAnchors, key: str, model: str) -> Pair:
    from langchain_openai import ChatOpenAI

    from redpill_integrations.langchain import ChatRedpill

    verifier, timing = _verifier(server, trust, key)
    verified = ChatRedpill(
        model=model, api_key=SecretStr(key), base_url=server.base_url, verifier=verifier
    )
    # stream_usage: ChatRedpill asks for the usage chunk by default; the same request both sides
    plain = ChatOpenAI(
        model=model, api_key=SecretStr(key), base_url=server.base_url, stream_usage=True
    )

    def side(name: str, llm: Any) -> Client:
        def stream() -> Iterator[tuple[str, dict[str, Any] | None]]:
            for chunk in llm.stream(PROMPT):
                yield str(chunk.content), chunk.response_metadata.get(VERDICT)

        async def astream() -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
            async for chunk in llm.astream(PROMPT):
                yield str(chunk.content), chunk.response_metadata.get(VERDICT)

        return Client(
            name,
            lambda: llm.invoke(PROMPT),
            stream,
            lambda: llm.ainvoke(PROMPT),
            lambda msg: msg.response_metadata.get(VERDICT),
            astream,
        )

    return Pair(
        "LangChain",
        side("ChatRedpill", verified),
        side("ChatOpenAI", plain),
        timing,
    )


def llama_index_pair(server: ServerProcess, trust: TrustAnchors, key: str, model: str) -> Pair:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    from redpill_integrations.llama_index import Redpill

    verifier, timing = _verifier(server, trust, key)
    verified = Redpill(model=model, api_key=key, api_base=server.base_url, verifier=verifier)
    plain = OpenAILike(model=model, api_key=key, api_base=server.base_url, is_chat_model=True)
    messages = [ChatMessage(role="user", content=PROMPT)]

    def side(name: str, llm: Any) -> Client:
        def stream() -> Iterator[tuple[str, dict[str, Any] | None]]:
            for r in llm.stream_chat(messages):
                yield r.delta or "", r.additional_kwargs.get(VERDICT)

        async def astream() -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
            async for r in await llm.astream_chat(messages):
                yield r.delta or "", r.additional_kwargs.get(VERDICT)

        return Client(
            name,
            lambda: llm.chat(messages),
            stream,
            lambda: llm.achat(messages),
            lambda r: r.additional_kwargs.get(VERDICT),
            astream,
        )

    return Pair(
        "LlamaIndex",
        side("Redpill", verified),
        side("OpenAILike", plain),
        timing,
    )


# --- non-streamed latency ----------------------------------------------------------------------


def _alternating(pair: Pair, reps: int) -> Iterator[tuple[str, Client]]:
    """ABBA order: slow drift of the machine's load hits both sides alike."""
    for i in range(reps):
        sides = [("v", pair.verified), ("p", pair.plain)]
        yield from (sides if i % 2 == 0 else sides[::-1])


def latency(pair: Pair, s: Settings, table: Table) -> None:
    v, p = pair.verified, pair.plain
    for _ in range(s.warmup):
        pair.check(v.verdict(v.invoke()))
        p.invoke()
    pair.timing.take("")
    walls: dict[str, list[float]] = {"v": [], "p": []}
    cpus: dict[str, list[float]] = {"v": [], "p": []}
    for key, client in _alternating(pair, s.latency_reps):
        c0, t0 = time.process_time(), time.perf_counter()
        out = client.invoke()
        walls[key].append(time.perf_counter() - t0)
        cpus[key].append(time.process_time() - c0)
        if key == "v":
            pair.check(client.verdict(out))
    sig = pair.timing.take("/signature/")
    if len(sig) != s.latency_reps:
        table.note(
            f"{pair.framework} latency: {len(sig)} signature fetches for "
            f"{s.latency_reps} calls (retries after 404?)"
        )
    mv, mp, msig = median(walls["v"]), median(walls["p"]), median(sig)
    added = mv - mp
    sec = f"latency ({pair.framework}, 10 KB JSON)"
    table.add(
        sec,
        f"{v.name} vs {p.name}: median call",
        f"{ms(mv):.2f} ms vs {ms(mp):.2f} ms (x{mv / mp:.2f})",
    )
    table.add(sec, "signature round trip (a), median", f"{ms(msig):.2f} ms")
    table.add(sec, "added latency per call", f"{ms(added):.2f} ms")
    table.add(
        sec,
        "(b) added beyond the signature round trip (our CPU + waiting for a core)",
        f"{ms(added - msig):.2f} ms",
    )
    cv, cp = median(cpus["v"]), median(cpus["p"])
    table.add(
        sec,
        "client CPU per call, verified vs plain (incl. the signature request's own HTTP work)",
        f"{ms(cv):.2f} ms vs {ms(cp):.2f} ms (+{ms(cv - cp):.2f} ms)",
        "<= plain + 1.5 ms",
        cv <= cp + 0.0015,
    )
    pair.report(sec, table)


# --- streaming ---------------------------------------------------------------------------------


def _one_stream(client: Client) -> tuple[float, float, dict[str, Any] | None]:
    """(time to the first chunk with text, time to the end of the stream, the verdict)."""
    t0 = time.perf_counter()
    ttft = None
    verdict = None
    for text, v in client.stream():
        if ttft is None and text:
            ttft = time.perf_counter() - t0
        verdict = v or verdict
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total), total, verdict


def streaming(pair: Pair, s: Settings, table: Table) -> None:
    v, p = pair.verified, pair.plain
    for _ in range(max(1, s.warmup // 3)):
        pair.check(_one_stream(v)[2])
        _one_stream(p)
    pair.timing.take("")
    res: dict[str, list[tuple[float, float]]] = {"v": [], "p": []}
    for key, client in _alternating(pair, s.stream_reps):
        ttft, total, verdict = _one_stream(client)
        res[key].append((ttft, total))
        if key == "v":
            pair.check(verdict)
    tv, tp = median([x[0] for x in res["v"]]), median([x[0] for x in res["p"]])
    av, ap = median([x[1] for x in res["v"]]), median([x[1] for x in res["p"]])
    sec = f"streaming ({pair.framework})"
    table.add(
        sec,
        f"time to first token, {v.name} vs {p.name}",
        f"{ms(tv):.2f} ms vs {ms(tp):.2f} ms ({(tv / tp - 1) * 100:+.1f}%, {ms(tv - tp):+.2f} ms)",
        "within 5% of plain",
        tv <= tp * 1.05,
    )
    table.add(
        sec,
        "total stream time incl. verdict",
        f"{ms(av):.1f} ms vs {ms(ap):.1f} ms ({ms(av - ap):+.2f} ms)",
    )
    sig = pair.timing.take("/signature/")
    table.add(
        sec,
        "signature fetches per verified stream (1 = found at once)",
        f"{len(sig) / s.stream_reps:.2f} (median fetch {ms(median(sig)):.2f} ms)",
    )
    pair.report(sec, table)


# --- concurrency -------------------------------------------------------------------------------


async def _drain(client: Client) -> dict[str, Any] | None:
    verdict = None
    async for _, v in client.astream():
        verdict = v or verdict
    return verdict


async def _round(client: Client, n: int, streamed: bool) -> tuple[float, list[Any]]:
    """n calls at once: (wall time, their verdicts)."""

    async def one() -> dict[str, Any] | None:
        return await _drain(client) if streamed else client.verdict(await client.ainvoke())

    t0 = time.perf_counter()
    verdicts = await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - t0, list(verdicts)


async def _concurrency(
    pair: Pair, s: Settings, server: ServerProcess, table: Table, streamed: bool
) -> None:
    sides = {"v": pair.verified, "p": pair.plain}
    for client in sides.values():  # warm: connections, attestation cache, lazy imports
        await _round(client, min(20, s.concurrency), streamed)
        await _round(client, s.concurrency, streamed)  # the pools at their working size
    walls: dict[str, list[float]] = {k: [] for k in sides}
    meters: dict[str, list[CpuMeter]] = {k: [] for k in sides}
    for i in range(s.concurrency_rounds):
        order = list(sides.items())
        for key, client in order if i % 2 == 0 else order[::-1]:
            gc.collect()  # a full collection inside a round costs ~0.3 s: start each one clean
            with CpuMeter(server) as meter:
                wall, verdicts = await _round(client, s.concurrency, streamed)
            walls[key].append(wall)
            meters[key].append(meter)
            if key != "p":
                for verdict in verdicts:
                    pair.check(verdict)
    n = s.concurrency
    rate = {k: n / median(w) for k, w in walls.items()}
    tv, tp = rate["v"], rate["p"]
    kind = f"{n} concurrent {'streamed' if streamed else 'async'} calls"
    if server.latency is None:
        where = "loopback" + (f", {s.stream_interval * 1000:.0f} ms/event" if streamed else "")
        floor = 0.6
    else:
        rtt, ttft, per_token = server.latency
        where = (
            f"realistic: {rtt * 1000:.0f} ms RTT, {ttft * 1000:.0f} ms to first token, "
            f"{per_token * 1000:.0f} ms/token"
        )
        floor = 0.8
    sec = f"concurrency ({pair.framework}, {kind}, {where})"
    table.add(
        sec,
        f"throughput, {pair.verified.name} vs {pair.plain.name}",
        f"{tv:.0f}/s vs {tp:.0f}/s ({tv / tp * 100:.0f}%)",
        f">= {floor * 100:.0f}% of plain",
        tv >= floor * tp,
    )

    def per_call(key: str, attr: str) -> float:
        return median([getattr(m, attr) / n for m in meters[key]])

    cv, cp = per_call("v", "client_s"), per_call("p", "client_s")
    sv, sp = per_call("v", "server_s"), per_call("p", "server_s")
    table.add(sec, "client CPU per call, verified vs plain", f"{ms(cv):.2f} ms vs {ms(cp):.2f} ms")
    table.add(
        sec,
        "server (emulator) CPU per call, verified vs plain",
        f"{ms(sv):.2f} ms vs {ms(sp):.2f} ms",
    )
    if not streamed:  # what one client core could sustain, the server's work taken out
        table.add(
            sec,
            "client-bound throughput (1 / client CPU per call)",
            f"{1 / cv:.0f}/s vs {1 / cp:.0f}/s ({cp / cv * 100:.0f}%)",
        )
    pair.report(sec, table)


def concurrency(
    pairs: list[tuple[Pair, bool]], s: Settings, server: ServerProcess, table: Table
) -> None:
    """Each (pair, streamed): short JSON calls measure client CPU at saturation; streamed calls
    that last a while (like real ones) show what the connection pools allow."""

    async def main() -> None:
        for pair, streamed in pairs:
            await _concurrency(pair, s, server, table, streamed)

    asyncio.run(main())
    pairs.clear()
    # The SDK's async clients close themselves when collected: do it now, with no loop running,
    # rather than inside the next section's event loop.
    gc.collect()
