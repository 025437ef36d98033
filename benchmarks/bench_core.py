"""Our own CPU per verified call, and the attestation's cold and warm costs.

Network is taken out by construction, not by subtraction where possible: the capture overhead is
timed over ``httpx.MockTransport`` (same body, with and without the capturing transport), and
``verify()`` is timed with its fetch transport answering the recorded signature from memory, so
what remains is our CPU (hashing, parsing, recovery, verdict, receipt) plus httpx's request
machinery, which a verified call really pays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
from bench_common import (
    ServerProcess,
    Settings,
    Table,
    TimingTransport,
    median,
    ms,
    time_calls,
    time_calls_cpu,
)

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.verify import (
    SignatureRecord,
    assemble_result,
    check_signature,
    parse_report,
    quote_fmspc,
    verify_attestation,
)
from redpill_integrations.verify.eventlog import check_event_log
from redpill_integrations.verify.gpu import payload_gpu_count, verify_nras
from redpill_integrations.verify.tdx import parse_td_quote, verify_quote
from redpill_integrations.wire import CAPTURE_HEADER, CapturedExchange, RedpillVerifier
from redpill_integrations.wire.capture import CapturingTransport, ExchangeRecorder
from redpill_integrations.wire.fetch_attestation import cached_attestation_flow
from redpill_integrations.wire.flow import FetchFailed, run_sync
from redpill_integrations.wire.http import Endpoints

PROMPT = [{"role": "user", "content": "Summarise verified provenance."}]


def capture_one(
    verifier: RedpillVerifier, base_url: str, key: str, model: str, **extra: Any
) -> CapturedExchange:
    """One real chat through the verifier's capturing client; its exchange."""
    with openai.OpenAI(base_url=base_url, api_key=key, http_client=verifier.http_client()) as c:
        tag = verifier.recorder.new_tag()
        c.chat.completions.create(
            model=model,
            messages=PROMPT,  # type: ignore[arg-type]
            extra_headers={CAPTURE_HEADER: tag},
            **extra,
        )
    exchange = verifier.recorder.take(tag)
    if exchange is None or not exchange.complete:
        raise RuntimeError("the benchmark could not capture an exchange")
    return exchange


def _signature(server: ServerProcess, key: str, ex: CapturedExchange) -> bytes:
    answer = httpx.get(
        f"{server.base_url}/signature/{ex.chat_id}",
        params={"model": ex.model or "", "signing_algo": "ecdsa"},
        headers={"Authorization": f"Bearer {key}"},
    )
    answer.raise_for_status()
    return answer.content


def _capture_overhead(ex: CapturedExchange, base_url: str, reps: int) -> tuple[float, float]:
    """(median CPU per call without capture, with capture) for one POST of the 10 KB exchange."""
    body = ex.response_body

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    url = f"{base_url}/chat/completions"
    mock = httpx.MockTransport(answer)
    recorder = ExchangeRecorder()
    capturing = CapturingTransport(
        mock,
        base_url=base_url,
        recorder=recorder,
        max_response_bytes=VerificationPolicy().max_response_bytes,
    )
    plain_client = httpx.Client(transport=mock)
    cap_client = httpx.Client(transport=capturing)

    def plain() -> None:
        plain_client.post(url, content=ex.request_body).read()

    def captured() -> None:
        tag = recorder.new_tag()
        cap_client.post(url, content=ex.request_body, headers={CAPTURE_HEADER: tag}).read()
        if recorder.take(tag) is None:
            raise RuntimeError("capture lost the exchange")

    time_calls(plain, 20)
    time_calls(captured, 20)
    p: list[float] = []
    c: list[float] = []
    for _ in range(max(1, reps // 50)):  # alternate blocks: drift hits both sides alike
        p += [cpu for _, cpu in time_calls_cpu(plain, 50)]
        c += [cpu for _, cpu in time_calls_cpu(captured, 50)]
    return median(p), median(c)


def own_cpu(
    server: ServerProcess, trust: TrustAnchors, key: str, model: str, s: Settings, table: Table
) -> None:
    sec = "our CPU (10 KB JSON response)"
    verifier = RedpillVerifier(base_url=server.base_url, api_key=key, trust=trust)
    ex = capture_one(verifier, server.base_url, key, model)
    sig_body = _signature(server, key, ex)
    record = SignatureRecord.from_json(sig_body)
    policy = verifier.policy
    outcome = verifier.attest(model)

    plain, captured = _capture_overhead(ex, server.base_url, s.cpu_reps)
    capture = max(0.0, captured - plain)
    table.add(
        sec,
        "capture overhead per call (MockTransport, with vs without)",
        f"{ms(capture):.3f} ms ({ms(captured):.3f} vs {ms(plain):.3f} ms)",
    )
    table.note(
        "our-CPU rows are medians of per-call process CPU time (time.process_time), "
        "which another process holding the core does not inflate the way wall time is"
    )

    now = datetime.now(UTC)

    def core() -> None:
        sig = check_signature(
            record,
            request_body=ex.request_body,
            response_body=ex.response_body,
            streamed=False,
            policy=policy,
        )
        assemble_result(
            sig, outcome.verdict, chat_id=ex.chat_id, model=ex.model, policy=policy, now=now
        )

    time_calls(core, 10)
    core_t = median([cpu for _, cpu in time_calls_cpu(core, s.cpu_reps)])
    table.add(
        sec, "check_signature + assemble_result (hash, recover, verdict)", f"{ms(core_t):.3f} ms"
    )

    # verify() end to end with the signature answered from memory (attestation warm, via the
    # real emulator once): everything a verified call does except the socket round trip.
    real = httpx.Client()

    def fetch(request: httpx.Request) -> httpx.Response:
        if "/signature/" in request.url.path:
            return httpx.Response(
                200, content=sig_body, headers={"content-type": "application/json"}
            )
        got = real.send(request)
        return httpx.Response(got.status_code, headers=got.headers, content=got.read())

    offline = RedpillVerifier(
        base_url=server.base_url, api_key=key, trust=trust, transport=httpx.MockTransport(fetch)
    )
    first = offline.verify(ex)
    if first.status.value != "verified":
        raise RuntimeError(f"offline verify did not pass: {first.reasons}")
    timed = time_calls_cpu(lambda: offline.verify(ex), s.cpu_reps)
    verify_t = median([cpu for _, cpu in timed])
    table.add(
        sec,
        "verify() with the signature fetch answered from memory",
        f"{ms(verify_t):.3f} ms (wall {ms(median([w for w, _ in timed])):.3f} ms)",
    )
    one = offline.verify(ex)
    to_dict = median([cpu for _, cpu in time_calls_cpu(one.to_dict, s.cpu_reps)])
    table.add(
        sec,
        "VerificationResult.to_dict() (adapters attach it to each answer)",
        f"{ms(to_dict):.3f} ms",
    )
    total = capture + verify_t
    table.add(
        sec,
        "our own CPU per verified call (capture + verify)",
        f"{ms(total):.3f} ms",
        "< 1 ms",
        total < 0.001,
    )

    # For scale: the signature GET itself over loopback, client side (httpx + httpcore + h11).
    getter = httpx.Client()
    url = f"{server.base_url}/signature/{ex.chat_id}"
    query = {"model": ex.model or "", "signing_algo": "ecdsa"}
    auth = {"Authorization": f"Bearer {key}"}

    def get() -> None:
        getter.get(url, params=query, headers=auth).raise_for_status()

    time_calls(get, 10)
    got = time_calls_cpu(get, max(5, s.cpu_reps // 4))
    get_cpu, get_wall = median([c for _, c in got]), median([w for w, _ in got])
    table.add(
        sec,
        "for scale: one signature GET on loopback, client CPU (wall)",
        f"{ms(get_cpu):.3f} ms ({ms(get_wall):.3f} ms)",
    )
    getter.close()
    real.close()
    offline.close()
    verifier.close()


def attestation(
    server: ServerProcess, trust: TrustAnchors, key: str, model: str, s: Settings, table: Table
) -> None:
    sec = "attestation"
    totals: list[float] = []
    nets: list[float] = []
    cpus: list[float] = []
    outcome = None
    for _ in range(s.cold_reps):
        timing = TimingTransport()
        fresh = RedpillVerifier(
            base_url=server.base_url, api_key=key, trust=trust, transport=timing
        )
        c0, t0 = time.process_time(), time.perf_counter()
        outcome = fresh.attest(model)
        totals.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        nets.append(sum(t for _, t in timing.log))
        if not outcome.passed:
            raise RuntimeError(f"cold attestation did not pass: {outcome.verdict.reasons}")
        fresh.close()
    assert outcome is not None and outcome.evidence is not None
    total, net = median(totals), median(nets)
    table.add(sec, "cold attestation (fresh verifier): total", f"{ms(total):.1f} ms")
    table.add(sec, "cold: network (report, PCCS x4, NRAS, JWKS round trips)", f"{ms(net):.1f} ms")
    rest = median([t - n for t, n in zip(totals, nets, strict=True)])
    table.add(sec, "cold: total - network", f"{ms(rest):.1f} ms")
    cold_cpu = median(cpus)
    table.add(
        sec,
        "cold: CPU of this process (incl. its HTTP client work)",
        f"{ms(cold_cpu):.1f} ms",
        "< 50 ms",
        cold_cpu < 0.050,
    )

    ev = outcome.evidence
    policy = VerificationPolicy()
    now = datetime.now(UTC)
    summary = outcome.verdict.summary
    signer = summary.signing_address if summary else None
    reps = max(3, s.cpu_reps // 10)

    def cpu(fn: Callable[[], object]) -> float:
        return median([c for _, c in time_calls_cpu(fn, reps)])

    full = cpu(lambda: verify_attestation(ev, signer=signer, policy=policy, trust=trust, now=now))
    report = parse_report(ev.report)
    node = report.nodes[0]
    quote = node.intel_quote
    collateral = ev.collateral[quote_fmspc(quote).lower()]
    rtmrs = parse_td_quote(quote).rtmrs
    assert ev.nras_response is not None and ev.nras_jwks is not None and node.nvidia_payload
    nras, jwks, payload = ev.nras_response, ev.nras_jwks, node.nvidia_payload
    parts = {
        "parse report": lambda: parse_report(ev.report),
        "DCAP quote (dcap-qvl)": lambda: verify_quote(
            quote, collateral, root_ca_der=trust.intel_root_ca_der, now=now
        ),
        "event log replay": lambda: check_event_log(node.event_log, rtmrs),
        "GPU tokens (NRAS JWTs)": lambda: verify_nras(
            nras,
            jwks,
            nonce=ev.nonce,
            issuer=trust.nras_issuer,
            now=now,
            ca_certs_der=trust.nras_ca_certs_der,
            expected_gpus=payload_gpu_count(payload),
        ),
    }
    costs = {name: cpu(fn) for name, fn in parts.items()}
    costs["the rest (quote fields, binding, compose, summary)"] = full - sum(costs.values())
    split = ", ".join(f"{name} {ms(t):.2f}" for name, t in costs.items())
    table.add(
        sec, "verify_attestation on captured evidence (steady, CPU)", f"{ms(full):.2f} ms = {split}"
    )

    # warm: a verified call finds the attestation in the cache
    verifier = RedpillVerifier(base_url=server.base_url, api_key=key, trust=trust)
    ex = capture_one(verifier, server.base_url, key, model)
    result = verifier.verify(ex)
    if result.status.value != "verified" or result.signer is None:
        raise RuntimeError(f"warm-up verification failed: {result.reasons}")
    endpoints = Endpoints(base_url=verifier.base_url, api_key=None, extra_urls=())
    signer_hit = result.signer

    def refuse(_: object) -> FetchFailed:
        raise RuntimeError("a warm attestation must not fetch")

    def warm() -> None:
        flow = cached_attestation_flow(
            endpoints,
            model=model,
            signer=signer_hit,
            policy=verifier.policy,
            trust=trust,
            now=lambda: datetime.now(UTC),
        )
        run_sync(flow, send=refuse, sleep=lambda _: None, cache=verifier.cache)

    warm_t = median(time_calls(warm, s.cpu_reps))
    fp = median(time_calls(verifier.policy.fingerprint, s.cpu_reps))
    table.add(
        sec,
        "warm (cached) attestation per call",
        f"{ms(warm_t) * 1000:.0f} us (of which policy.fingerprint() {ms(fp) * 1000:.0f} us)",
    )
    verifier.close()
