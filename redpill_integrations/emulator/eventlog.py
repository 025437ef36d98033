"""A dstack-style CVM identity: app compose, event log and the measurements it replays to."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from typing import Any

from redpill_integrations.emulator.quote import TdMeasurements

__all__ = ["DSTACK_RUNTIME_EVENT", "CvmIdentity", "replay_rtmrs", "runtime_event_digest"]

DSTACK_RUNTIME_EVENT = 0x08000001


def runtime_event_digest(event: str, payload: bytes) -> bytes:
    """sha384(u32le(0x08000001) ‖ ":" ‖ event ‖ ":" ‖ payload), as dstack measures into RTMR3."""
    return hashlib.sha384(
        struct.pack("<I", DSTACK_RUNTIME_EVENT) + b":" + event.encode() + b":" + payload
    ).digest()


def replay_rtmrs(events: list[dict[str, Any]]) -> list[bytes]:
    """mr = 48 zero bytes; mr = sha384(mr ‖ digest) for each event of that imr."""
    mrs = [bytes(48)] * 4
    for e in events:
        mrs[e["imr"]] = hashlib.sha384(mrs[e["imr"]] + bytes.fromhex(e["digest"])).digest()
    return mrs


def _h(seed: bytes, label: str, n: int) -> bytes:
    return hashlib.sha512(seed + b"|cvm|" + label.encode()).digest()[:n]


@dataclasses.dataclass(frozen=True)
class CvmIdentity:
    """One emulated CVM ("node"): its compose, ids, event log and TD measurements."""

    name: str
    app_compose: str
    app_id: str
    instance_id: str
    device_id: str
    os_image_hash: str
    event_log: tuple[dict[str, Any], ...]
    measurements: TdMeasurements

    @property
    def compose_hash(self) -> str:
        return hashlib.sha256(self.app_compose.encode()).hexdigest()

    @classmethod
    def create(cls, seed: bytes, name: str) -> CvmIdentity:
        compose = json.dumps(
            {
                "manifest_version": 2,
                "name": name,
                "runner": "docker-compose",
                "docker_compose_file": (
                    "services:\n  vllm-proxy:\n    image: redpill-emulator:dev\n"
                ),
                "kms_enabled": True,
                "gateway_enabled": False,
                "public_logs": True,
                "public_sysinfo": True,
                "note": "Redpill EMULATOR: not a real TEE",
            },
            indent=4,
        )
        compose_hash = hashlib.sha256(compose.encode()).digest()
        app_id = _h(seed, name + "/app-id", 20)
        instance_id = _h(seed, name + "/instance-id", 20)
        os_image = _h(seed, "os-image", 32)
        events: list[dict[str, Any]] = []
        for imr, count in ((0, 4), (1, 3), (2, 2)):
            for i in range(count):
                payload = _h(seed, f"boot/{imr}/{i}", 24)
                events.append(
                    {
                        "imr": imr,
                        "event_type": 0x80000001 + i,
                        "digest": hashlib.sha384(payload).hexdigest(),
                        "event": "",
                        "event_payload": payload.hex(),
                    }
                )
        runtime = [
            ("system-preparing", b""),
            ("app-id", app_id),
            ("compose-hash", compose_hash),
            ("instance-id", instance_id),
            ("boot-mr-done", b""),
            ("mr-kms", _h(seed, "mr-kms", 32)),
            ("os-image-hash", os_image),
            ("key-provider", b'{"name":"kms","id":"emulator"}'),
            ("storage-fs", b"zfs"),
            ("system-ready", b""),
        ]
        for event, payload in runtime:
            events.append(
                {
                    "imr": 3,
                    "event_type": DSTACK_RUNTIME_EVENT,
                    "digest": runtime_event_digest(event, payload).hex(),
                    "event": event,
                    "event_payload": payload.hex(),
                }
            )
        r = replay_rtmrs(events)
        measurements = TdMeasurements(
            mr_td=_h(seed, "mrtd", 48),
            mr_config_id=b"\x01" + compose_hash + bytes(15),
            rtmrs=(r[0], r[1], r[2], r[3]),
        )
        return cls(
            name=name,
            app_compose=compose,
            app_id=app_id.hex(),
            instance_id=instance_id.hex(),
            device_id=_h(seed, "device", 32).hex(),
            os_image_hash=os_image.hex(),
            event_log=tuple(events),
            measurements=measurements,
        )

    def info(
        self, *, event_log: list[dict[str, Any]] | None = None, app_compose: str | None = None
    ) -> dict[str, Any]:
        """dstack ``Info`` as the proxy returns it (``event_log``/``app_compose`` overridable)."""
        m = self.measurements
        compose = self.app_compose if app_compose is None else app_compose
        return {
            "app_id": self.app_id,
            "instance_id": self.instance_id,
            "app_name": self.name,
            "device_id": self.device_id,
            "compose_hash": self.compose_hash,
            "os_image_hash": self.os_image_hash,
            "key_provider_info": '{"name":"kms","id":"emulator"}',
            "emulator": True,
            "tcb_info": {
                "mrtd": m.mr_td.hex(),
                "rtmr0": m.rtmrs[0].hex(),
                "rtmr1": m.rtmrs[1].hex(),
                "rtmr2": m.rtmrs[2].hex(),
                "rtmr3": m.rtmrs[3].hex(),
                "mr_config_id": m.mr_config_id.hex(),
                "os_image_hash": self.os_image_hash,
                "compose_hash": self.compose_hash,
                "device_id": self.device_id,
                "app_compose": compose,
                "event_log": event_log if event_log is not None else list(self.event_log),
            },
        }
