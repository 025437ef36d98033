"""Everything one emulator instance knows: configuration, keys, PKI, scripts, faults, counters."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import Counter
from typing import Literal

from redpill_integrations.emulator.aci.gateway import AciGateway
from redpill_integrations.emulator.aci.receipts import ReceiptStore
from redpill_integrations.emulator.aci.upstreams import SessionBook
from redpill_integrations.emulator.collateral import TCB_STATUSES, build_collateral
from redpill_integrations.emulator.eventlog import CvmIdentity
from redpill_integrations.emulator.faults import Faults
from redpill_integrations.emulator.model import ModelInfo, ReplyScript
from redpill_integrations.emulator.pki import TestPki
from redpill_integrations.emulator.quote import QuoteFactory
from redpill_integrations.emulator.signer import SignatureStore, SigningKeys
from redpill_integrations.errors import ConfigurationError

__all__ = ["DEFAULT_MODELS", "EmulatorConfig", "EmulatorState", "Stats"]

DEFAULT_MODELS = (
    ModelInfo("phala/deepseek-chat-v3-0324", "deepseek-ai/DeepSeek-V3-0324"),
    ModelInfo("phala/qwen-2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct"),
    ModelInfo("phala/gpt-oss-120b", "openai/gpt-oss-120b"),
    ModelInfo("phala/deepseek-r1-70b", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"),
    ModelInfo("openai/gpt-4o-mini", "gpt-4o-mini", tee=False),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmulatorConfig:
    signing_algo: Literal["ecdsa", "ed25519"] = "ecdsa"
    report_shape: Literal["flat", "two-layer"] = "flat"
    signed_text_parts: Literal[2, 3] = 2
    tls_bound: bool = False
    tcb_status: str = "UpToDate"
    debug_td: bool = False
    signature_ttl: float = 1200.0
    signature_delay: float = 0.0
    gpu_count: int = 1
    seed: bytes | str | None = None
    #: seconds between SSE events (0: back to back, each its own chunk)
    stream_interval: float = 0.0
    #: seconds added once to every HTTP exchange (see :mod:`~redpill_integrations.emulator.latency`)
    network_rtt: float = 0.0
    #: seconds before a chat completion's first token
    time_to_first_token: float = 0.0
    #: seconds per completion token
    time_per_token: float = 0.0
    #: gzip JSON bodies for clients that accept gzip (signature stays over the decoded bytes)
    gzip: bool = False
    #: "aci" (default, as api.redpill.ai): the ACI gateway (generation B); "legacy": the
    #: per-node signature protocol
    protocol: Literal["aci", "legacy"] = "aci"
    #: seconds an ACI receipt is kept (the live gateway: 3600)
    receipt_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if self.signing_algo not in ("ecdsa", "ed25519"):
            raise ConfigurationError(f"unknown signing_algo {self.signing_algo!r}")
        if self.report_shape not in ("flat", "two-layer"):
            raise ConfigurationError(f"unknown report_shape {self.report_shape!r}")
        if self.signed_text_parts not in (2, 3):
            raise ConfigurationError("signed_text_parts must be 2 or 3")
        if self.protocol not in ("aci", "legacy"):
            raise ConfigurationError(f"unknown protocol {self.protocol!r}")
        if self.tcb_status not in TCB_STATUSES:
            raise ConfigurationError(f"unknown tcb_status {self.tcb_status!r}")
        if not 1 <= self.gpu_count <= 16:
            raise ConfigurationError("gpu_count must be 1..16")
        durations = (
            self.signature_ttl,
            self.signature_delay,
            self.stream_interval,
            self.network_rtt,
            self.time_to_first_token,
            self.time_per_token,
            self.receipt_ttl,
        )
        if min(durations) < 0:
            raise ConfigurationError("durations must not be negative")

    @property
    def seed_bytes(self) -> bytes:
        if self.seed is None:
            return os.urandom(32)
        raw = self.seed.encode() if isinstance(self.seed, str) else self.seed
        return hashlib.sha256(b"redpill-emulator-seed|" + raw).digest()


@dataclasses.dataclass
class Stats:
    """Request counters (read them from tests; reset with :meth:`reset`)."""

    signature_lookups: Counter[str] = dataclasses.field(default_factory=Counter)
    attestation_fetches: int = 0
    attestation_nonces: list[str] = dataclasses.field(default_factory=list)
    nras_calls: int = 0
    pccs_calls: Counter[str] = dataclasses.field(default_factory=Counter)
    jwks_calls: int = 0
    chat_requests: int = 0
    chats_completed: int = 0
    receipt_lookups: Counter[str] = dataclasses.field(default_factory=Counter)
    session_lookups: int = 0

    def reset(self) -> None:
        self.signature_lookups.clear()
        self.receipt_lookups.clear()
        self.session_lookups = 0
        self.attestation_nonces.clear()
        self.pccs_calls.clear()
        self.attestation_fetches = self.nras_calls = self.jwks_calls = 0
        self.chat_requests = self.chats_completed = 0


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        seed = config.seed_bytes
        self.seed = seed
        self.pki = TestPki.create(seed)
        self.collateral = build_collateral(self.pki, tcb_status=config.tcb_status)
        self.quotes = QuoteFactory(self.pki, seed)
        self.node = CvmIdentity.create(seed, "redpill-emulator-vllm-proxy")
        self.gateway = CvmIdentity.create(seed, "redpill-emulator-gateway")
        self.keys = SigningKeys(seed, "model-node")
        self.gateway_keys = SigningKeys(seed, "gateway")
        self.foreign_keys = SigningKeys(seed, "foreign-unattested")
        self.tls_fingerprint = hashlib.sha256(seed + b"|tls-spki").digest()
        self.models = {m.id: m for m in DEFAULT_MODELS}
        self.store = SignatureStore()
        self.aci = AciGateway(seed, tls_spki_sha256=self.tls_fingerprint)
        self.receipts = ReceiptStore()
        self.aci_sessions: SessionBook | None = None  # set by the ACI routes
        self.script = ReplyScript()
        self.stats = Stats()
        self.origin = ""  # set once the port is known
        self._faults: dict[str | None, Faults] = {}
        self._lock = threading.Lock()
        self._attestation_count: dict[str | None, int] = {}
        self.nonce_models: dict[str, str] = {}

    # faults --------------------------------------------------------------------------------
    def set_faults(self, faults: Faults, model: str | None = None) -> None:
        with self._lock:
            self._faults[model] = faults
            self._attestation_count[model] = 0

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._attestation_count.clear()

    def faults_for(self, model: str | None, header: Faults | None = None) -> Faults:
        with self._lock:
            out = Faults().merged(self._faults.get(None))
            if model is not None:
                out = out.merged(self._faults.get(model))
        return out.merged(header)

    def take_attestation_reset(self, model: str | None, header: Faults | None) -> bool:
        """True when this attestation fetch must be reset (counts fetches since set_faults)."""
        if header is not None and header.attestation_reset > 0:
            return True
        with self._lock:
            for key in (model, None):
                f = self._faults.get(key)
                if f is not None and f.attestation_reset > 0:
                    n = self._attestation_count.get(key, 0)
                    self._attestation_count[key] = n + 1
                    return n < f.attestation_reset
        return False
