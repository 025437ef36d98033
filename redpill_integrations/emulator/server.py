"""Run the emulator in-process (a uvicorn server on its own thread) or in the foreground."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import uvicorn

from redpill_integrations.emulator.app import create_app
from redpill_integrations.emulator.faults import Faults
from redpill_integrations.emulator.model import Reply
from redpill_integrations.emulator.nras import nras_ca_der
from redpill_integrations.emulator.responses import install_reset_log_filter
from redpill_integrations.emulator.state import EmulatorConfig, EmulatorState, Stats
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.policy import OsImage, TrustAnchors

__all__ = ["API_KEY", "LOOPBACK_HOSTS", "Emulator"]

logger = logging.getLogger("redpill_integrations.emulator")

#: the key :attr:`Emulator.api_key` reports; any non-empty bearer token is accepted
API_KEY = "sk-redpill-emulator"
LOOPBACK_HOSTS = ("127.0.0.1",)


def _bind(host: str, port: int) -> socket.socket:
    if host not in LOOPBACK_HOSTS:
        raise ConfigurationError(f"the emulator binds to loopback only (127.0.0.1), not {host!r}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # SSE: no Nagle delays
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot bind {host}:{port}: {exc}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Emulator:
    """A Redpill-compatible server on loopback, with a test PKI. NOT a real TEE.

    Use as a context manager (sync or async); see the package docstring for the endpoints.
    ``network_rtt``, ``time_to_first_token`` and ``time_per_token`` (seconds, default 0) simulate
    latency (:mod:`~redpill_integrations.emulator.latency`).
    """

    def __init__(
        self,
        *,
        signing_algo: Literal["ecdsa", "ed25519"] = "ecdsa",
        report_shape: Literal["flat", "two-layer"] = "flat",
        signed_text_parts: Literal[2, 3] = 2,
        tls_bound: bool = False,
        tcb_status: str = "UpToDate",
        debug_td: bool = False,
        signature_ttl: float = 1200.0,
        signature_delay: float = 0.0,
        gpu_count: int = 1,
        seed: bytes | str | None = None,
        gzip: bool = False,
        stream_interval: float = 0.0,
        protocol: Literal["aci", "legacy"] = "aci",
        receipt_ttl: float = 3600.0,
        network_rtt: float = 0.0,
        time_to_first_token: float = 0.0,
        time_per_token: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        config = EmulatorConfig(
            signing_algo=signing_algo,
            report_shape=report_shape,
            signed_text_parts=signed_text_parts,
            tls_bound=tls_bound,
            tcb_status=tcb_status,
            debug_td=debug_td,
            signature_ttl=signature_ttl,
            signature_delay=signature_delay,
            gpu_count=gpu_count,
            seed=seed,
            gzip=gzip,
            stream_interval=stream_interval,
            protocol=protocol,
            receipt_ttl=receipt_ttl,
            network_rtt=network_rtt,
            time_to_first_token=time_to_first_token,
            time_per_token=time_per_token,
        )
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.origin = f"http://{host}:{self.port}"
        self._state = EmulatorState(config)
        self._state.origin = self.origin
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- public surface -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def api_key(self) -> str:
        return API_KEY

    @property
    def config(self) -> EmulatorConfig:
        return self._state.config

    @property
    def signing_address(self) -> str:
        """The attested signer for the configured ``signing_algo``; in ACI mode the legacy alias
        signer (``0x`` + lowercase hex: the keyset's secp256k1 E2EE key)."""
        if self._state.config.protocol == "aci":
            return self._state.aci.keys.e2ee_address
        return self._state.keys.address(self._state.config.signing_algo)

    def signing_address_for(self, algo: str) -> str:
        return self._state.keys.address(algo)

    @property
    def foreign_signing_address(self) -> str:
        """The unattested key the ``foreign_signer`` fault signs with."""
        return self._state.foreign_keys.address(self._state.config.signing_algo)

    @property
    def root_ca_der(self) -> bytes:
        return self._state.pki.root_der

    @property
    def pccs_url(self) -> str:
        return self.origin

    @property
    def nras_url(self) -> str:
        return f"{self.origin}/v3/attest/gpu"

    @property
    def nras_jwks_url(self) -> str:
        return f"{self.origin}/.well-known/jwks.json"

    @property
    def trust(self) -> TrustAnchors:
        """The emulator's anchors: its test DCAP root, PCCS and NRAS, and for ACI its test KMS
        root, gateway app id and test OS image."""
        aci = self._state.aci.trust_entries()
        return TrustAnchors(
            kind="redpill-emulator",
            intel_root_ca_der=self.root_ca_der,
            pccs_url=self.pccs_url,
            nras_url=self.nras_url,
            nras_jwks_url=self.nras_jwks_url,
            base_url=self.base_url,
            nras_ca_certs_der=(nras_ca_der(self._state.seed),),
            kms_root_pubkeys=tuple(aci["kms_root_pubkeys"]),
            aci_app_ids=tuple(aci["aci_app_ids"]),
            os_images={
                **{h: OsImage.from_dict(e) for h, e in aci["os_images"].items()},
                **self.os_images,
            },
        )

    @property
    def os_images(self) -> dict[str, OsImage]:
        """The legacy-mode image of the trust file's OS-image registry: the emulated model node's
        and legacy gateway's one image, fully measured (both boot the same emulated firmware,
        kernel and initrd). ``trust`` lists it beside the ACI gateway's test image."""
        node = self._state.node
        m = node.measurements
        image = OsImage(
            name="redpill-emulator-os",
            mrtd=m.mr_td.hex(),
            rtmr1=m.rtmrs[1].hex(),
            rtmr2=m.rtmrs[2].hex(),
            source="the emulator's own test image (not a dstack release)",
        )
        return {node.os_image_hash: image}

    def trust_dict(self) -> dict[str, Any]:
        """The SPEC §5 trust file content, with the ACI anchors ``kms_root_pubkeys`` (compressed
        hex), ``aci_app_ids`` (hex) and ``os_images`` (``{os_image_hash: {"name", "mrtd",
        "rtmr1", "rtmr2", "source"}}``)."""
        return self.trust.to_dict()

    def write_trust_file(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.write_text(json.dumps(self.trust_dict(), indent=2) + "\n", encoding="utf-8")
        return out

    @property
    def protocol(self) -> Literal["aci", "legacy"]:
        return self._state.config.protocol

    @property
    def keyset_digest(self) -> str:
        """ACI: the current ``workload_keyset_digest`` (``sha256:<hex>``)."""
        return self._state.aci.keyset_digest()

    def rotate_keyset(self) -> None:
        """ACI: new receipt and E2EE keys; the next response's ``X-ACI-Keyset-Digest`` changes."""
        self._state.aci.rotate()

    @property
    def models(self) -> Mapping[str, bool]:
        """Served model ids → whether they run in a (emulated) TEE."""
        return {m.id: m.tee for m in self._state.models.values()}

    @property
    def stats(self) -> Stats:
        return self._state.stats

    @property
    def state(self) -> EmulatorState:
        """Internals, for tests that need the PKI, collateral or CVM identity."""
        return self._state

    def script(self, model: str | None = None, replies: list[Reply] | None = None) -> None:
        self._state.script.add(model, list(replies or []))

    def clear_scripts(self) -> None:
        self._state.script.clear()

    def set_faults(self, faults: Faults, model: str | None = None) -> None:
        self._state.set_faults(faults, model)

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def reset(self) -> None:
        """Clear faults, scripts, stored signatures and counters."""
        self.clear_faults()
        self.clear_scripts()
        self._state.store.clear()
        self._state.receipts.clear()
        self._state.stats.reset()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        install_reset_log_filter()
        config = uvicorn.Config(
            create_app(self._state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            loop="asyncio",
            timeout_keep_alive=30,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        server, sock = self._server, self._sock

        def run() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(
            target=run, name=f"redpill-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator failed to start")
            time.sleep(0.005)
        logger.warning("Redpill EMULATOR listening on %s (test PKI: NOT a real TEE)", self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = self._server = None
        self._sock.close()

    def serve_forever(self) -> None:
        """Run in the foreground until interrupted (the CLI)."""
        install_reset_log_filter()
        config = uvicorn.Config(
            create_app(self._state),
            log_level="info",
            lifespan="off",
            http="h11",
            loop="asyncio",
            backlog=2048,
        )
        server = uvicorn.Server(config)
        try:
            asyncio.run(server.serve(sockets=[self._sock]))
        finally:
            self._sock.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        return f"Emulator(base_url={self.base_url!r}, NOT a real TEE)"
