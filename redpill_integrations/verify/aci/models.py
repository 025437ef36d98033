"""ACI documents parsed at the boundary into frozen models (docs/protocol-aci.md).

* :func:`parse_aci_report` — ``GET /v1/aci/attestation`` (generation B; generation A is refused
  with :class:`UnsupportedProtocol`, unknown shapes too);
* :func:`parse_receipt` — ``GET /v1/aci/receipts/{id}``;
* :func:`parse_session` — ``GET /v1/aci/sessions/{id}``.

Every parser takes the exact bytes served, keeps them (``raw``) and the parsed JSON object
(``document``, which is what gets canonicalized and hashed), and raises only our
:class:`~redpill_integrations.errors.EvidenceError` subclasses: duplicate keys →
``DuplicateJSONKey``; oversize, over-deep or wrongly typed → ``MalformedEvidence``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from redpill_integrations.errors import MalformedEvidence, UnsupportedProtocol
from redpill_integrations.verify.encoding import as_dict, as_str, decode_hex, loads_strict, norm_hex
from redpill_integrations.verify.report import _parse_event_log

__all__ = [
    "ACI_VERSION",
    "AciReceipt",
    "AciReport",
    "AciSession",
    "CustodyKey",
    "KeyEntry",
    "WorkloadKeyset",
    "parse_aci_report",
    "parse_receipt",
    "parse_session",
]

ACI_VERSION = "aci/1"
MAX_REPORT_BYTES = 2 * 1024 * 1024  # the live report is ~50 KB
MAX_RECEIPT_BYTES = 256 * 1024  # a receipt is < 2 KB
MAX_SESSION_BYTES = 4 * 1024 * 1024  # sessions may carry the upstream's report as evidence
MAX_EVENTS = 64
_U64 = 1 << 64


def _int(value: Any, *, what: str) -> int:
    if type(value) is not int or not 0 <= value < _U64:
        raise MalformedEvidence(f"{what} is not an unsigned 64-bit integer")
    return value


def _opt_str(value: Any, *, what: str, max_len: int = 4096) -> str | None:
    return None if value is None else as_str(value, what=what, max_len=max_len)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyEntry:
    """One keyset key: ``key_id``, ``algo`` and the public key (lower-case hex)."""

    key_id: str
    algo: str
    public_key: str


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadKeyset:
    """The gateway's workload keyset (generation B). ``document`` is hashed, never re-built."""

    document: Mapping[str, Any]
    subject: str | None
    not_after: int
    receipt_keys: tuple[KeyEntry, ...]
    e2ee_keys: tuple[KeyEntry, ...]
    tls_spkis: tuple[tuple[str, str | None], ...]  # (spki_sha256, domain or None)

    def receipt_key(self, key_id: str) -> KeyEntry | None:
        return next((k for k in self.receipt_keys if k.key_id == key_id), None)


@dataclasses.dataclass(frozen=True, slots=True)
class CustodyKey:
    """One ``evidence.key_custody.keys[i]`` entry: a dstack KMS chain for one keyset key."""

    role: str
    purpose: str
    algo: str
    public_key: str
    kms_public_key: str
    signature_chain: tuple[bytes, bytes]


@dataclasses.dataclass(frozen=True, slots=True)
class AciReport:
    """A generation-B ACI attestation report."""

    raw: bytes
    workload_keyset_digest: str  # as restated by the server; recomputed by the verifier
    keyset: WorkloadKeyset
    report_data: bytes  # 32 bytes
    quote: bytes
    quote_report_data: bytes  # 64 bytes
    event_log: tuple[dict[str, Any], ...]
    vm_config: Mapping[str, Any]
    app_compose: str | None
    custody_provider: str | None
    custody: tuple[CustodyKey, ...]
    repo_url: str | None
    source_commit: str | None
    serving: str  # "aggregator" (default) | "direct" | another server value


@dataclasses.dataclass(frozen=True, slots=True)
class AciReceipt:
    """A generation-B receipt. ``document`` is the whole parsed object (signature included)."""

    raw: bytes
    document: Mapping[str, Any]
    receipt_id: str
    chat_id: str | None
    model: str | None
    workload_keyset_digest: str
    endpoint: str
    method: str | None
    served_at: int
    events: tuple[Mapping[str, Any], ...]
    key_id: str
    signature: bytes  # 64 bytes

    def signed_document(self) -> dict[str, Any]:
        """The signing input's value: the document without its ``signature`` member."""
        return {k: v for k, v in self.document.items() if k != "signature"}

    def events_of(self, kind: str) -> tuple[Mapping[str, Any], ...]:
        return tuple(e for e in self.events if e.get("type") == kind)


@dataclasses.dataclass(frozen=True, slots=True)
class AciSession:
    """A generation-B attested-session record (``GET /v1/aci/sessions/{id}``)."""

    raw: bytes
    document: Mapping[str, Any]  # hashed whole: session_id = sha256(jcs(document))
    upstream_name: str
    verifier_id: str | None
    established_at: int
    expires_at: int
    claims: Mapping[str, Any]
    evidence_digest: str | None
    evidence_data: str | None


def _load(body: bytes, *, what: str, max_bytes: int) -> dict[str, Any]:
    if not isinstance(body, bytes | bytearray):
        raise MalformedEvidence(f"{what} must be bytes")
    data = as_dict(loads_strict(bytes(body), what=what, max_bytes=max_bytes), what=what)
    if data.get("api_version") != ACI_VERSION:
        raise UnsupportedProtocol(f"{what} api_version is not {ACI_VERSION!r}")
    return data


def parse_aci_report(body: bytes) -> AciReport:
    """Parse ``/v1/aci/attestation`` bytes. Generation by shape, never by ``api_version``."""
    data = _load(body, what="ACI report", max_bytes=MAX_REPORT_BYTES)
    att = as_dict(data.get("attestation"), what="attestation")
    ks = as_dict(att.get("workload_keyset"), what="attestation.workload_keyset")
    if "keyset_epoch" in ks or "workload_id" in data:
        raise UnsupportedProtocol(
            "ACI generation A report (keyset_epoch/workload_id): the pre-2026-08 draft is not "
            "verified; api.redpill.ai serves generation B"
        )
    if type(ks.get("not_after")) is not int:
        raise UnsupportedProtocol("unknown ACI report shape (no integer keyset not_after)")
    if att.get("tee_type") != "tdx":
        raise UnsupportedProtocol("ACI report tee_type is not 'tdx' (only TDX is verified)")
    evidence = as_dict(att.get("evidence"), what="attestation.evidence")
    provenance = att.get("source_provenance")
    provenance = as_dict(provenance, what="source_provenance") if provenance is not None else {}
    caps = data.get("service_capabilities")
    caps = as_dict(caps, what="service_capabilities") if caps is not None else {}
    serving = caps.get("serving")
    return AciReport(
        raw=bytes(body),
        workload_keyset_digest=as_str(
            data.get("workload_keyset_digest"), what="workload_keyset_digest", max_len=80
        ),
        keyset=_parse_keyset(ks),
        report_data=decode_hex(att.get("report_data"), what="report_data", nbytes=32),
        quote=decode_hex(evidence.get("quote"), what="evidence.quote", max_len=64 * 1024),
        quote_report_data=decode_hex(
            evidence.get("quote_report_data"), what="evidence.quote_report_data", nbytes=(32, 64)
        ),
        event_log=_parse_event_log(evidence.get("event_log"), what="evidence.event_log"),
        vm_config=_json_object(evidence.get("vm_config"), what="evidence.vm_config"),
        app_compose=_opt_str(evidence.get("app_compose"), what="app_compose", max_len=1 << 20),
        custody_provider=_custody_provider(evidence.get("key_custody")),
        custody=_parse_custody(evidence.get("key_custody")),
        repo_url=_opt_str(provenance.get("repo_url"), what="source_provenance.repo_url"),
        source_commit=_opt_str(provenance.get("repo_commit"), what="source_provenance.repo_commit"),
        serving=serving if isinstance(serving, str) else "aggregator",
    )


def _json_object(value: Any, *, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = loads_strict(value, what=what, max_bytes=64 * 1024)
    return as_dict(value, what=what)


def _parse_keys(value: Any, *, what: str) -> tuple[KeyEntry, ...]:
    if not isinstance(value, list) or len(value) > MAX_EVENTS:
        raise MalformedEvidence(f"{what} is not a list of keys")
    out = []
    for i, item in enumerate(value):
        entry = as_dict(item, what=f"{what}[{i}]")
        out.append(
            KeyEntry(
                key_id=as_str(entry.get("key_id"), what=f"{what}[{i}].key_id", max_len=256),
                algo=as_str(entry.get("algo"), what=f"{what}[{i}].algo", max_len=128),
                public_key=norm_hex(
                    entry.get("public_key"), what=f"{what}[{i}].public_key", max_len=1024
                ),
            )
        )
    return tuple(out)


def _parse_keyset(ks: dict[str, Any]) -> WorkloadKeyset:
    tls = ks.get("tls_public_keys", [])
    if not isinstance(tls, list) or len(tls) > MAX_EVENTS:
        raise MalformedEvidence("workload_keyset.tls_public_keys is not a list")
    spkis = []
    for i, item in enumerate(tls):
        entry = as_dict(item, what=f"tls_public_keys[{i}]")
        spki = norm_hex(entry.get("spki_sha256"), what=f"tls_public_keys[{i}]", nbytes=32)
        spkis.append((spki, _opt_str(entry.get("domain"), what="tls domain", max_len=256)))
    return WorkloadKeyset(
        document=ks,
        subject=_opt_str(ks.get("subject"), what="workload_keyset.subject"),
        not_after=_int(ks.get("not_after"), what="workload_keyset.not_after"),
        receipt_keys=_parse_keys(ks.get("receipt_signing_keys"), what="receipt_signing_keys"),
        e2ee_keys=_parse_keys(ks.get("e2ee_public_keys", []), what="e2ee_public_keys"),
        tls_spkis=tuple(spkis),
    )


def _custody_provider(value: Any) -> str | None:
    if value is None:
        return None
    return _opt_str(as_dict(value, what="key_custody").get("provider"), what="key_custody.provider")


def _parse_custody(value: Any) -> tuple[CustodyKey, ...]:
    if value is None:
        return ()
    keys = as_dict(value, what="key_custody").get("keys")
    if not isinstance(keys, list) or len(keys) > MAX_EVENTS:
        raise MalformedEvidence("key_custody.keys is not a list")
    out = []
    for i, item in enumerate(keys):
        what = f"key_custody.keys[{i}]"
        entry = as_dict(item, what=what)
        chain = entry.get("signature_chain")
        if not isinstance(chain, list) or len(chain) != 2:
            raise MalformedEvidence(f"{what}.signature_chain is not two signatures")
        out.append(
            CustodyKey(
                role=as_str(entry.get("role"), what=f"{what}.role", max_len=128),
                purpose=as_str(entry.get("purpose"), what=f"{what}.purpose", max_len=256),
                algo=as_str(entry.get("algo"), what=f"{what}.algo", max_len=128),
                public_key=norm_hex(entry.get("public_key"), what=f"{what}.public_key"),
                kms_public_key=norm_hex(
                    entry.get("kms_public_key"), what=f"{what}.kms_public_key", nbytes=33
                ),
                signature_chain=(
                    decode_hex(chain[0], what=f"{what}.signature_chain[0]", nbytes=65),
                    decode_hex(chain[1], what=f"{what}.signature_chain[1]", nbytes=65),
                ),
            )
        )
    return tuple(out)


def parse_receipt(body: bytes) -> AciReceipt:
    """Parse ``/v1/aci/receipts/{id}`` bytes (generation B; a signature object is generation A)."""
    data = _load(body, what="ACI receipt", max_bytes=MAX_RECEIPT_BYTES)
    if isinstance(data.get("signature"), dict) or "workload_id" in data:
        raise UnsupportedProtocol("ACI generation A receipt (signature object) is not verified")
    events = data.get("event_log")
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise MalformedEvidence("receipt event_log is not a list")
    parsed_events = []
    for i, item in enumerate(events):
        event = as_dict(item, what=f"receipt event_log[{i}]")
        as_str(event.get("type"), what=f"receipt event_log[{i}].type", max_len=128)
        parsed_events.append(event)
    return AciReceipt(
        raw=bytes(body),
        document=data,
        receipt_id=as_str(data.get("receipt_id"), what="receipt_id", max_len=128),
        chat_id=_opt_str(data.get("chat_id"), what="chat_id", max_len=512),
        model=_opt_str(data.get("model"), what="model", max_len=512),
        workload_keyset_digest=as_str(
            data.get("workload_keyset_digest"), what="receipt workload_keyset_digest", max_len=80
        ),
        endpoint=as_str(data.get("endpoint"), what="endpoint", max_len=512),
        method=_opt_str(data.get("method"), what="method", max_len=16),
        served_at=_int(data.get("served_at"), what="served_at"),
        events=tuple(parsed_events),
        key_id=as_str(data.get("key_id"), what="key_id", max_len=256),
        signature=decode_hex(data.get("signature"), what="receipt signature", nbytes=64),
    )


def parse_session(body: bytes) -> AciSession:
    """Parse ``/v1/aci/sessions/{id}`` bytes (the full record; list entries do not hash)."""
    data = _load(body, what="ACI session", max_bytes=MAX_SESSION_BYTES)
    if "session_id" in data:
        raise MalformedEvidence(
            "session record carries session_id: a listing entry, not the sealed record"
        )
    evidence = data.get("evidence")
    evidence = as_dict(evidence, what="session evidence") if evidence is not None else {}
    claims = data.get("claims")
    return AciSession(
        raw=bytes(body),
        document=data,
        upstream_name=as_str(data.get("upstream_name"), what="upstream_name", max_len=256),
        verifier_id=_opt_str(data.get("verifier_id"), what="verifier_id", max_len=256),
        established_at=_int(data.get("established_at"), what="established_at"),
        expires_at=_int(data.get("expires_at"), what="expires_at"),
        claims=as_dict(claims, what="session claims") if claims is not None else {},
        evidence_digest=_opt_str(evidence.get("digest"), what="evidence.digest", max_len=80),
        evidence_data=_opt_str(evidence.get("data"), what="evidence.data", max_len=8 << 20),
    )
