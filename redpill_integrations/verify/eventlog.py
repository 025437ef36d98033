"""Event-log replay and the dstack app identity (``docs/protocol-legacy.md`` §7-§8).

* RTMR replay: for imr 0..3, ``mr = 48 zero bytes; mr = sha384(mr ‖ digest)`` per event; the result
  must equal the quote's RTMRs.
* dstack runtime events (imr 3, type ``0x08000001``) must carry the digest
  ``sha384(u32le(0x08000001) ‖ b":" ‖ event ‖ b":" ‖ payload)``, so their payloads are measured too.
* Compose: ``sha256(app_compose)`` == the ``compose-hash`` event payload == ``info.compose_hash``;
  the ``app-id`` event payload == ``info.app_id``; a non-zero ``mr_config_id`` must be the v1
  form ``0x01 ‖ compose_hash ‖ zero padding``.

Values used for policy decisions (compose hash, app id, os image hash) are taken from the *measured*
runtime events, never from the server-supplied ``info`` block; ``info.compose_hash``/``info.app_id``
are only claims: when present they must agree, when absent nothing is lost (``app_compose``
itself is checked against the measured event).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DSTACK_RUNTIME_EVENT",
    "AppIdentity",
    "check_compose",
    "check_event_log",
    "replay_rtmrs",
    "runtime_event_digest",
]

DSTACK_RUNTIME_EVENT = 0x08000001
_ZERO48 = b"\x00" * 48


@dataclasses.dataclass(frozen=True, slots=True)
class AppIdentity:
    """What the measured runtime events say about the app (lower-case hex, or None if absent)."""

    compose_hash: str | None
    app_id: str | None
    os_image_hash: str | None
    instance_id: str | None
    repeated: tuple[str, ...] = ()  # identity events measured more than once (never trusted)


def runtime_event_digest(event: str, payload: bytes) -> bytes:
    data = struct.pack("<I", DSTACK_RUNTIME_EVENT) + b":" + event.encode() + b":" + payload
    return hashlib.sha384(data).digest()


def replay_rtmrs(events: Sequence[dict[str, Any]]) -> tuple[bytes, bytes, bytes, bytes]:
    mrs = [_ZERO48, _ZERO48, _ZERO48, _ZERO48]
    for event in events:
        imr = event["imr"]
        mrs[imr] = hashlib.sha384(mrs[imr] + bytes.fromhex(event["digest"])).digest()
    return mrs[0], mrs[1], mrs[2], mrs[3]


def check_event_log(
    events: Sequence[dict[str, Any]], rtmrs: Sequence[bytes]
) -> tuple[str | None, AppIdentity]:
    """(problem or None, measured app identity). ``events`` are normalised by ``report.py``."""
    identity = _identity(events)
    if not events:
        return "the report carries no event log", identity
    for i, event in enumerate(events):
        if event["imr"] == 3 and event["event_type"] == DSTACK_RUNTIME_EVENT:
            digest = runtime_event_digest(event["event"], bytes.fromhex(event["event_payload"]))
            if digest.hex() != event["digest"]:
                return (
                    f"runtime event {i} ({event['event'][:40]!r}) digest does not recompute",
                    identity,
                )
    replayed = replay_rtmrs(events)
    for imr in range(4):
        if replayed[imr] != rtmrs[imr]:
            return f"RTMR{imr} replay does not equal the quote", identity
    return None, identity


def _identity(events: Sequence[dict[str, Any]]) -> AppIdentity:
    found: dict[str, str] = {}
    repeated: list[str] = []
    for event in events:
        if event["imr"] == 3 and event["event_type"] == DSTACK_RUNTIME_EVENT:
            name = event["event"]
            if name in ("compose-hash", "app-id", "os-image-hash", "instance-id"):
                # dstack measures each once at boot; a second one (say, emitted later by the app
                # itself) makes the identity ambiguous, so it is refused rather than picked.
                if name in found:
                    repeated.append(name)
                found[name] = event["event_payload"]
    return AppIdentity(
        compose_hash=found.get("compose-hash"),
        app_id=found.get("app-id"),
        os_image_hash=found.get("os-image-hash"),
        instance_id=found.get("instance-id"),
        repeated=tuple(repeated),
    )


def _info_hex(info: dict[str, Any] | None, key: str) -> str | None:
    value = (info or {}).get(key)
    if value is None:
        return None
    return value.lower().removeprefix("0x") if isinstance(value, str) else "<not a string>"


def check_compose(
    identity: AppIdentity, info: dict[str, Any] | None, mr_config_id: bytes
) -> str | None:
    """Problem or None. ``identity`` must come from an event log that replayed."""
    if identity.repeated:
        return f"runtime event {identity.repeated[0]!r} is measured more than once"
    if identity.compose_hash is None:
        return "no compose-hash runtime event"
    tcb = (info or {}).get("tcb_info") or {}
    app_compose = tcb.get("app_compose")
    if not isinstance(app_compose, str):
        return "info.tcb_info.app_compose is missing"
    if hashlib.sha256(app_compose.encode()).hexdigest() != identity.compose_hash:
        return "sha256(app_compose) differs from the compose-hash event"
    claimed = _info_hex(info, "compose_hash")
    if claimed is not None and claimed != identity.compose_hash:
        return "info.compose_hash differs from the compose-hash event"
    if identity.app_id is None:
        return "no app-id runtime event"
    claimed = _info_hex(info, "app_id")
    if claimed is not None and claimed != identity.app_id:
        return "info.app_id differs from the app-id event"
    if any(mr_config_id):
        expected = (b"\x01" + bytes.fromhex(identity.compose_hash)).ljust(48, b"\x00")
        if mr_config_id != expected:
            return "mr_config_id is not 0x01 ‖ compose_hash"
    return None
