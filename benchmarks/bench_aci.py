"""ACI rows: our own CPU per verified call and the cold attestation, against the ACI emulator.

The emulator runs in its own process in ACI mode (``--protocol aci``). A verified call's own CPU
is measured as in the legacy rows, with the network taken out by construction: every request the
verifier makes is recorded once from the real emulator, then ``verify()`` is timed with its fetch
transport answering those recorded bytes from memory (the attestation warm in its cache). The
cold attestation is the first ``verify()`` of a fresh verifier minus a warm one: what the first
call to a model costs this process (report, collateral, GPU evidence and their checks), its
requests answered from memory too, so it is CPU, not waiting.

When the tree cannot verify an ACI answer at all (the ACI wire path missing, or a fault), the rows
say so with the verdict's reasons instead of a number.
"""

from __future__ import annotations

import threading
import time

import httpx
from bench_common import ServerProcess, Settings, Table, median, ms, time_calls_cpu
from bench_core import capture_one

from redpill_integrations.policy import TrustAnchors
from redpill_integrations.wire import CapturedExchange, RedpillVerifier


class Replay(httpx.BaseTransport):
    """Records every answer of a real transport (``recording``), then serves them from memory;
    a request never seen goes to the real transport and is counted in ``misses``."""

    def __init__(self) -> None:
        self._real = httpx.HTTPTransport()
        self._store: dict[tuple[str, str], tuple[int, httpx.Headers, bytes]] = {}
        self._lock = threading.Lock()
        self.recording = True
        self.misses = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, str(request.url))
        with self._lock:
            hit = None if self.recording else self._store.get(key)
        if hit is not None:
            status, headers, body = hit
            return httpx.Response(status, headers=headers, content=body)
        got = self._real.handle_request(request)
        body = got.read()
        with self._lock:
            if self.recording:
                self._store[key] = (got.status_code, got.headers, body)
            else:
                self.misses += 1
        return httpx.Response(got.status_code, headers=got.headers, content=body)

    def close(self) -> None:
        self._real.close()


def _verified(
    server: ServerProcess, trust: TrustAnchors, key: str, model: str
) -> tuple[CapturedExchange, Replay, str | None]:
    """One captured exchange, the replay of every fetch its verification made, and ``None`` or
    why it was not verified."""
    capturer = RedpillVerifier(base_url=server.base_url, api_key=key, trust=trust)
    ex = capture_one(capturer, server.base_url, key, model)
    capturer.close()
    replay = Replay()
    first = RedpillVerifier(base_url=server.base_url, api_key=key, trust=trust, transport=replay)
    result = first.verify(ex)
    first.close()
    replay.recording = False
    if result.status.value != "verified":
        return ex, replay, f"{result.status.value}: {', '.join(r.value for r in result.reasons)}"
    return ex, replay, None


def aci(s: Settings, key: str, model: str, table: Table) -> None:
    sec = "ACI (10 KB JSON response)"
    with ServerProcess(s, protocol="aci") as server:
        trust = TrustAnchors.from_file(server.trust_file)
        ex, replay, failed = _verified(server, trust, key, model)
        if failed is not None:
            why = f"not measured: this tree does not verify an ACI answer ({failed})"
            table.add(sec, "our own CPU per verified call (verify, network from memory)", why)
            table.add(sec, "cold attestation CPU (first verify - warm verify)", why)
            replay.close()
            return

        colds: list[float] = []
        for _ in range(s.cold_reps):
            fresh = RedpillVerifier(
                base_url=server.base_url, api_key=key, trust=trust, transport=replay
            )
            c0 = time.process_time()
            fresh.verify(ex)
            colds.append(time.process_time() - c0)
            fresh.close()
        warm_verifier = RedpillVerifier(
            base_url=server.base_url, api_key=key, trust=trust, transport=replay
        )
        if warm_verifier.verify(ex).status.value != "verified":
            table.error("ACI: the replayed verification was not verified")
        timed = time_calls_cpu(lambda: warm_verifier.verify(ex), s.cpu_reps)
        warm = median([cpu for _, cpu in timed])
        cold = median(colds) - warm
        misses = f"; {replay.misses} requests not replayed" if replay.misses else ""
        table.add(
            sec,
            "our own CPU per verified call (verify, network from memory; capture as above)",
            f"{ms(warm):.3f} ms (wall {ms(median([w for w, _ in timed])):.3f} ms{misses})",
            "<= 1 ms",
            warm <= 0.001,
        )
        table.add(
            sec,
            "cold attestation CPU (first verify of a fresh verifier - warm verify)",
            f"{ms(cold):.1f} ms",
            "<= 50 ms",
            cold <= 0.050,
        )
        warm_verifier.close()
        replay.close()
