"""Shared pieces of the benchmark: the emulator process, timers, the results table, the machine."""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- settings --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """How much work each section does (``--quick``: tiny counts, for the smoke test)."""

    quick: bool
    warmup: int
    latency_reps: int
    stream_reps: int
    stream_interval: float
    stream_chars: int
    concurrency: int
    concurrency_rounds: int
    cpu_reps: int
    cold_reps: int
    memory_calls: int
    memory_warmup: int
    memory_parallel: int
    #: the realistic rows' emulator: network round trip, time to first token, time per token (s)
    realistic: tuple[float, float, float]

    @classmethod
    def full(cls) -> Settings:
        return cls(
            quick=False,
            warmup=10,
            latency_reps=60,
            stream_reps=20,
            stream_interval=0.02,
            stream_chars=120,
            concurrency=200,
            concurrency_rounds=3,
            cpu_reps=400,
            cold_reps=5,
            memory_calls=10_000,
            memory_warmup=1_000,
            memory_parallel=16,
            realistic=(0.040, 0.300, 0.020),
        )

    @classmethod
    def tiny(cls) -> Settings:
        return cls(
            quick=True,
            warmup=1,
            latency_reps=2,
            stream_reps=1,
            stream_interval=0.001,
            stream_chars=24,
            concurrency=4,
            concurrency_rounds=1,
            cpu_reps=5,
            cold_reps=1,
            memory_calls=10,
            memory_warmup=2,
            memory_parallel=2,
            realistic=(0.002, 0.005, 0.001),
        )


# --- statistics and timing -------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ms(seconds: float) -> float:
    return seconds * 1000.0


def time_calls(fn: Callable[[], Any], reps: int) -> list[float]:
    """Wall time of each of ``reps`` calls of ``fn`` (GC paused inside each timing)."""
    return [w for w, _ in time_calls_cpu(fn, reps)]


def time_calls_cpu(fn: Callable[[], Any], reps: int) -> list[tuple[float, float]]:
    """(wall, CPU of this process) of each of ``reps`` calls of ``fn``, GC paused inside each.

    On a shared machine the CPU time is the robust one: wall time also counts the moments
    another process held the core.
    """
    out: list[tuple[float, float]] = []
    for _ in range(reps):
        gc.disable()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0, time.process_time() - c0))
        gc.enable()
    return out


class TimingTransport(httpx.BaseTransport):
    """Wraps a transport and records (path, seconds until the body is read) of every request."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()
        self.log: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        t0 = time.perf_counter()
        response = self._inner.handle_request(request)
        body = response.read()
        elapsed = time.perf_counter() - t0
        with self._lock:
            self.log.append((request.url.path, elapsed))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=body,
            extensions=response.extensions,
        )

    def take(self, path_part: str) -> list[float]:
        with self._lock:
            hits = [t for p, t in self.log if path_part in p]
            self.log.clear()
        return hits

    def close(self) -> None:
        self._inner.close()


def rss_bytes() -> int:
    """This process's resident set size (VmRSS), from /proc (psutil is not a dependency)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


# --- the emulator in its own process -----------------------------------------------------------


class ServerProcess:
    """``bench_server.py`` in a child process: its CPU time is read from /proc, apart from ours."""

    def __init__(
        self,
        settings: Settings,
        *,
        latency: tuple[float, float, float] | None = None,
        protocol: str = "legacy",
    ) -> None:
        """``latency``: (network round trip, time to first token, time per token) in seconds."""
        self.latency = latency
        self.protocol = protocol
        self._dir = tempfile.TemporaryDirectory(prefix="redpill-bench-")
        self.trust_file = Path(self._dir.name) / "trust.json"
        args = [
            sys.executable,
            str(HERE / "bench_server.py"),
            "--trust-out",
            str(self.trust_file),
            "--stream-interval",
            str(settings.stream_interval),
            "--stream-chars",
            str(settings.stream_chars),
        ]
        if settings.quick:
            args += ["--replies", "500"]
        if latency is not None:
            rtt, ttft, per_token = latency
            args += ["--network-rtt", str(rtt), "--time-to-first-token", str(ttft)]
            args += ["--time-per-token", str(per_token)]
        if protocol != "legacy":
            args += ["--protocol", protocol]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p
        )
        self._log = Path(self._dir.name) / "server.log"
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            tail = self._log.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"the benchmark emulator did not start: {line!r}\n{tail}")
        self.base_url = line.split(" ", 1)[1]

    def cpu_seconds(self) -> float:
        """user + system CPU of the server process so far."""
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._dir.cleanup()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclasses.dataclass
class CpuMeter:
    """Client (this process) and server CPU seconds over a block of work."""

    server: ServerProcess
    client_s: float = 0.0
    server_s: float = 0.0
    wall_s: float = 0.0

    def __enter__(self) -> CpuMeter:
        self._c0, self._s0 = time.process_time(), self.server.cpu_seconds()
        self._w0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client_s = time.process_time() - self._c0
        self.server_s = self.server.cpu_seconds() - self._s0
        self.wall_s = time.perf_counter() - self._w0


# --- the results table -----------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    section: str
    measurement: str
    value: str
    target: str = ""
    met: bool | None = None  # None: informational

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "NOT MET")


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: list[str] = []
        #: correctness problems (a verified call that was not ``verified``): the run fails
        self.errors: list[str] = []

    def add(
        self, section: str, measurement: str, value: str, target: str = "", met: bool | None = None
    ) -> None:
        row = Row(section, measurement, value, target, met)
        self.rows.append(row)
        flag = f"  [{row.verdict}]" if row.verdict else ""
        print(f"  {measurement}: {value}{'  target ' + target if target else ''}{flag}", flush=True)

    def error(self, text: str) -> None:
        self.errors.append(text)
        print(f"  ERROR: {text}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def render_text(self) -> str:
        heads = ("section", "measurement", "value", "target", "met")
        cells = [
            heads,
            *((r.section, r.measurement, r.value, r.target, r.verdict) for r in self.rows),
        ]
        widths = [max(len(c[i]) for c in cells) for i in range(len(heads))]

        def line(c: tuple[str, ...]) -> str:
            return "  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])

    def render_markdown(self) -> str:
        out = ["| section | measurement | value | target | met |", "|---|---|---|---|---|"]
        for r in self.rows:
            out.append(f"| {r.section} | {r.measurement} | {r.value} | {r.target} | {r.verdict} |")
        return "\n".join(out)


# --- the machine -----------------------------------------------------------------------------

_PACKAGES = (
    "redpill-integrations",
    "openai",
    "httpx",
    "langchain-core",
    "langchain-openai",
    "llama-index-core",
    "llama-index-llms-openai-like",
    "coincurve",
    "eth-account",
    "cryptography",
    "dcap-qvl",
    "uvicorn",
    "fastapi",
    "tenacity",
    "pydantic",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _ours() -> str:
    from redpill_integrations._version import __version__

    try:
        sha = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"redpill-integrations {__version__} (working tree{', git ' + sha if sha else ''})"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def machine() -> list[tuple[str, str]]:
    versions = [_ours()]
    for name in _PACKAGES[1:]:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        ("nproc", str(os.cpu_count())),
        ("CPU", _cpu_model()),
        ("memory", _memory_total()),
        ("load average at start (1/5/15 min)", _loadavg()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("OS", platform.platform()),
        ("packages", ", ".join(versions)),
    ]
