"""The emulated ACI gateway's CVM: its test OS image, app compose, event log and measurements.

The OS image is the same for every emulator (an image is a build, not a deployment): its hash,
MRTD, RTMR1 and RTMR2 are constants of this module and go to the trust file's ``os_images``.
RTMR0 covers the VM configuration; RTMR3 the dstack runtime events, in the live order
``system-preparing, app-id, compose-hash, instance-id, boot-mr-done, mr-kms, os-image-hash,
key-provider, storage-fs, system-ready``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from redpill_integrations.emulator.eventlog import (
    DSTACK_RUNTIME_EVENT,
    replay_rtmrs,
    runtime_event_digest,
)
from redpill_integrations.emulator.quote import TdMeasurements

__all__ = [
    "GATEWAY_REPO_COMMIT",
    "GATEWAY_REPO_URL",
    "TEST_OS_IMAGE",
    "AciGatewayCvm",
    "TestOsImage",
]

GATEWAY_REPO_URL = "https://github.com/redpill-emulator/aci-gateway-emulator.git"
#: the source commit the emulated gateway's compose pins (a made-up, fixed value)
GATEWAY_REPO_COMMIT = hashlib.sha256(b"redpill-emulator aci gateway").hexdigest()[:40]


def _h(label: str, n: int) -> bytes:
    return hashlib.sha512(b"redpill-emulator|aci-os|" + label.encode()).digest()[:n]


@dataclasses.dataclass(frozen=True)
class TestOsImage:
    """The emulator's test dstack OS image: its hash and the measurements it boots to."""

    name: str
    os_image_hash: str
    mrtd: bytes
    boot_events: tuple[dict[str, Any], ...]  # imr 1 and 2

    @property
    def rtmr1(self) -> bytes:
        return replay_rtmrs(list(self.boot_events))[1]

    @property
    def rtmr2(self) -> bytes:
        return replay_rtmrs(list(self.boot_events))[2]

    def trust_entry(self) -> dict[str, str]:
        return {
            "name": self.name,
            "mrtd": self.mrtd.hex(),
            "rtmr1": self.rtmr1.hex(),
            "rtmr2": self.rtmr2.hex(),
            "source": "redpill-emulator test image (NOT a real dstack build)",
        }


def _boot_event(imr: int, index: int, label: str) -> dict[str, Any]:
    payload = _h(label, 24)
    return {
        "imr": imr,
        "event_type": 0x80000001 + index,
        "digest": hashlib.sha384(payload).hexdigest(),
        "event": "",
        "event_payload": payload.hex(),
    }


TEST_OS_IMAGE = TestOsImage(
    name="dstack-emulator-0.5.9-test",
    os_image_hash=_h("os-image-hash", 32).hex(),
    mrtd=_h("mrtd", 48),
    boot_events=tuple(
        [_boot_event(1, i, f"rtmr1/{i}") for i in range(3)]
        + [_boot_event(2, i, f"rtmr2/{i}") for i in range(2)]
    ),
)


def _compose(repo_commit: str) -> str:
    compose_file = (
        "# Redpill EMULATOR: an emulated ACI gateway (NOT a real TEE)\n"
        "services:\n"
        "  launcher:\n"
        "    image: redpill-emulator/aci-gateway:dev\n"
        "    environment:\n"
        f"      PRIVATE_AI_GATEWAY_REPO_URL: {GATEWAY_REPO_URL}\n"
        f"      PRIVATE_AI_GATEWAY_REPO_COMMIT: {repo_commit}\n"
    )
    return json.dumps(
        {
            "allowed_envs": ["PRIVATE_AI_GATEWAY_ADMIN_TOKEN"],
            "docker_compose_file": compose_file,
            "gateway_enabled": True,
            "kms_enabled": True,
            "manifest_version": 2,
            "name": "redpill-emulator-aci-gateway",
            "public_logs": True,
            "public_sysinfo": True,
            "runner": "docker-compose",
        },
        separators=(",", ":"),
    )


@dataclasses.dataclass(frozen=True)
class AciGatewayCvm:
    """One emulated gateway CVM (deterministic from the seed and the KMS it belongs to)."""

    app_id: bytes
    app_compose: str
    vm_config: str
    event_log: tuple[dict[str, Any], ...]
    measurements: TdMeasurements
    repo_commit: str

    @property
    def compose_hash(self) -> str:
        return hashlib.sha256(self.app_compose.encode()).hexdigest()

    @classmethod
    def create(cls, seed: bytes, *, app_id: bytes, kms_root_hex: str) -> AciGatewayCvm:
        image = TEST_OS_IMAGE
        compose = _compose(GATEWAY_REPO_COMMIT)
        compose_hash = hashlib.sha256(compose.encode()).digest()
        vm_config = json.dumps(
            {
                "os_image_hash": image.os_image_hash,
                "cpu_count": 4,
                "memory_size": 8589934592,
                "num_gpus": 0,
                "num_nvswitches": 0,
                "hotplug_off": False,
                "image": image.name,
                "spec_version": 1,
            },
            separators=(",", ":"),
        )
        rtmr0 = [
            _boot_event(0, i, f"rtmr0/{i}/" + hashlib.sha256(vm_config.encode()).hexdigest())
            for i in range(4)
        ]
        key_provider = json.dumps({"name": "kms", "id": kms_root_hex}, separators=(",", ":"))
        runtime = [
            ("system-preparing", b""),
            ("app-id", app_id),
            ("compose-hash", compose_hash),
            ("instance-id", hashlib.sha256(seed + b"|aci-instance").digest()[:20]),
            ("boot-mr-done", b""),
            ("mr-kms", hashlib.sha256(kms_root_hex.encode()).digest()),
            ("os-image-hash", bytes.fromhex(image.os_image_hash)),
            ("key-provider", key_provider.encode()),
            ("storage-fs", b"zfs"),
            ("system-ready", b""),
        ]
        events = [*rtmr0, *image.boot_events]
        events += [
            {
                "imr": 3,
                "event_type": DSTACK_RUNTIME_EVENT,
                "digest": runtime_event_digest(name, payload).hex(),
                "event": name,
                "event_payload": payload.hex(),
            }
            for name, payload in runtime
        ]
        r = replay_rtmrs(events)
        return cls(
            app_id=app_id,
            app_compose=compose,
            vm_config=vm_config,
            event_log=tuple(events),
            measurements=TdMeasurements(
                mr_td=image.mrtd,
                mr_config_id=b"\x01" + compose_hash + bytes(15),
                rtmrs=(r[0], r[1], r[2], r[3]),
            ),
            repo_commit=GATEWAY_REPO_COMMIT,
        )
