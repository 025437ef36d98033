"""The emulated gateway's upstreams, one of each kind, and the attested sessions it keeps.

| model id                       | upstream kind  | upstream_name | session evidence         |
|--------------------------------|----------------|---------------|--------------------------|
| ``phala/deepseek-chat-v3-0324``| phala-direct   | ``phala-emu`` | a flat model-node report |
| ``phala/gpt-oss-120b``         | phala-direct   | ``phala-emu`` | a flat model-node report |
| ``phala/deepseek-r1-70b``      | near-ai        | ``near-ai``   | a two-layer report       |
| ``phala/qwen-2.5-7b-instruct`` | chutes         | ``chutes``    | none (``evidence: {}``)  |
| ``openai/gpt-4o-mini``         | none (non-TEE) | ``openai``    | no session: ``failed``   |

A session lives one hour (``expires_at = established_at + 3600``); a new one is established on
first use after that. ``session_id`` = sha256 of the session document's canonical bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any, Literal

from redpill_integrations.emulator.aci.jcs import canonical

__all__ = [
    "SESSION_LIFETIME",
    "UPSTREAMS",
    "EvidenceSource",
    "SessionBook",
    "Upstream",
    "UpstreamKind",
    "upstream_for",
]

UpstreamKind = Literal["phala-direct", "near-ai", "chutes", "none"]
SESSION_LIFETIME = 3600


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One upstream the gateway routes to: its kind, operator label, origin and verifier."""

    kind: UpstreamKind
    name: str
    endpoint: str
    verifier_id: str

    @property
    def is_tee(self) -> bool:
        return self.kind != "none"


_PHALA = Upstream(
    "phala-direct",
    "phala-emu",
    "https://phala-direct.emulator.invalid",
    "private-ai-verifier/phala-direct/v1",
)
_NEAR = Upstream(
    "near-ai",
    "near-ai",
    "https://near-ai.emulator.invalid",
    "private-ai-verifier/near-ai-gateway/v1",
)
_CHUTES = Upstream(
    "chutes", "chutes", "https://chutes.emulator.invalid", "private-ai-verifier/chutes/v1"
)
_OPENAI = Upstream("none", "openai", "https://openai.emulator.invalid", "none")

UPSTREAMS: dict[str, Upstream] = {
    "phala/deepseek-chat-v3-0324": _PHALA,
    "phala/gpt-oss-120b": _PHALA,
    "phala/deepseek-r1-70b": _NEAR,
    "phala/qwen-2.5-7b-instruct": _CHUTES,
    "openai/gpt-4o-mini": _OPENAI,
}


def upstream_for(model: str, *, tee: bool) -> Upstream:
    """The table's upstream; a model missing from it is phala-direct if TEE, else non-TEE."""
    return UPSTREAMS.get(model) or (_PHALA if tee else _OPENAI)


def _asserted(source: str) -> dict[str, str]:
    return {"status": "asserted", "source": source}


#: evidence(kind, gateway_nonce_hex) → the JSON bytes the gateway stores (None: no evidence)
EvidenceSource = Callable[[UpstreamKind, str], bytes | None]


class SessionBook:
    """Current session per upstream, and every sealed session by id (until retention ends)."""

    def __init__(self, *, evidence: EvidenceSource, spki_sha256: bytes, signing_address: str):
        self._evidence = evidence
        self._spki = spki_sha256.hex()
        self._address = signing_address
        self._lock = threading.Lock()
        self._current: dict[str, str] = {}
        self._docs: dict[str, dict[str, Any]] = {}

    def _document(self, up: Upstream, now: int) -> dict[str, Any]:
        nonce = hashlib.sha256(f"{up.name}|{now}".encode()).hexdigest()
        data = self._evidence(up.kind, nonce)
        claims: dict[str, Any] = {"tee_attested": _asserted("hardware_proven")}
        binding: list[dict[str, Any]]
        identity: dict[str, Any] | None = None
        if up.kind == "chutes":
            binding = [
                {
                    "type": "e2ee_public_key_sha256",
                    "provider": "chutes",
                    "key_id": "emulator-chutes-instance-0",
                    "algorithm": "chutes-ml-kem-768",
                    "public_key_sha256": hashlib.sha256(b"emulator ml-kem key").hexdigest(),
                }
            ]
            claims["extra"] = {
                "instance_id": "emulator-chutes-instance-0",
                "tcb_status": "UpToDate",
            }
        else:
            binding = [
                {"type": "tls_spki_sha256", "origin": up.endpoint, "spki_sha256": self._spki}
            ]
            claims["tcb_up_to_date"] = _asserted("hardware_proven")
            if up.kind == "phala-direct":
                claims["gpu_attested"] = _asserted("verifier_derived")
                identity = {"signing_address": self._address}
        doc: dict[str, Any] = {
            "api_version": "aci/1",
            "upstream_name": up.name,
            "endpoint": up.endpoint,
            "verifier_id": up.verifier_id,
            "established_at": now,
            "expires_at": now + SESSION_LIFETIME,
            "channel_binding": binding,
            "claims": claims,
            "evidence": {},
        }
        if identity is not None:
            doc["identity"] = identity
        if data is not None:
            doc["evidence"] = {
                "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "data": "data:application/json;base64," + base64.b64encode(data).decode(),
            }
        return doc

    def current(self, up: Upstream, now: int) -> str:
        """The id of ``up``'s live session (established now if there is none)."""
        with self._lock:
            sid = self._current.get(up.name)
            if sid is not None and now < self._docs[sid]["expires_at"]:
                return sid
            doc = self._document(up, now)
            sid = hashlib.sha256(canonical(doc)).hexdigest()
            self._docs[sid] = doc
            self._current[up.name] = sid
            return sid

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._docs.get(session_id)

    def listing(self, now: int, upstream_name: str | None, model: str | None) -> dict[str, Any]:
        """The list form: live sessions, newest first, ``session_id`` added, ``evidence.data``
        dropped."""
        names = {u.name for m, u in UPSTREAMS.items() if model is None or m == model}
        with self._lock:
            items = sorted(self._docs.items(), key=lambda kv: -int(kv[1]["established_at"]))
        out = []
        for sid, doc in items:
            if now >= doc["expires_at"] or doc["upstream_name"] not in names:
                continue
            if upstream_name is not None and doc["upstream_name"] != upstream_name:
                continue
            entry = json.loads(json.dumps(doc))
            entry["evidence"].pop("data", None)
            entry["session_id"] = sid
            out.append(entry)
        return {"api_version": "aci/1", "sessions": out}
