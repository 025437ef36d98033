"""What a verification accepts (:class:`VerificationPolicy`) and whom it trusts
(:class:`TrustAnchors`).

Both are frozen. Production trust anchors are the default; anything else (the emulator's test PKI)
is chosen explicitly with :meth:`TrustAnchors.from_file` and logs a warning every time it is loaded
and every time a verifier is built on it. Whether anchors are production is derived from their
values (Intel's built-in root, the production PCCS/NRAS/JWKS URLs), never from the ``kind`` label.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from redpill_integrations.errors import ConfigurationError

__all__ = [
    "DEFAULT_ACCEPTED_TCB_STATUSES",
    "DEFAULT_BASE_URL",
    "PRODUCTION_ACI_APP_IDS",
    "PRODUCTION_KMS_ROOT_PUBKEYS",
    "TCB_STATUSES",
    "TEE_MODEL_PREFIXES",
    "OsImage",
    "TrustAnchors",
    "VerificationPolicy",
    "production_os_images",
]

logger = logging.getLogger("redpill_integrations")

DEFAULT_BASE_URL = "https://api.redpill.ai/v1"

#: Redpill serves models under these prefixes from GPU TEEs; nothing else carries a signature to
#: check. A verifier may be given others (``RedpillVerifier(tee_model_prefixes=...)``).
TEE_MODEL_PREFIXES: tuple[str, ...] = ("phala/",)
PRODUCTION_PCCS_URL = "https://pccs.phala.network"
PRODUCTION_NRAS_URL = "https://nras.attestation.nvidia.com/v3/attest/gpu"
PRODUCTION_NRAS_JWKS_URL = "https://nras.attestation.nvidia.com/.well-known/jwks.json"
#: NVIDIA's NRAS signing-key issuer shipped with the package (docs/nvidia-nras-pinning.md)
PRODUCTION_NRAS_CA_FILE = "nvidia_nras_gpu_intermediate_004.pem"

TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
)
DEFAULT_ACCEPTED_TCB_STATUSES = frozenset({"UpToDate", "SWHardeningNeeded", "OutOfDate"})

#: The dstack KMS root (compressed secp256k1) behind api.redpill.ai's ACI gateway: every custody
#: chain of the live gateway recovers to it (docs/protocol-aci.md, key custody).
PRODUCTION_KMS_ROOT_PUBKEYS = (
    "0334c76e0c3f52ec64cbf9bbf5c910c272330166fd656c0a86bb330963e46910e1",
)
#: The dstack app id of api.redpill.ai's ACI gateway (RTMR3 ``app-id`` event), stable since 2026-06.
PRODUCTION_ACI_APP_IDS = ("fdb7a14e5a6675f752e2cb69c9067a98ca402918",)

_ALLOWLISTS = (
    "allowed_compose_hashes",
    "allowed_app_ids",
    "allowed_os_image_hashes",
    "allowed_mrtds",
    "allowed_rtmr0",
    "allowed_rtmr1",
    "allowed_rtmr2",
)


def _normalise_hex_set(name: str, values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise ConfigurationError(f"{name} must be a collection of hex strings, not one string")
    out = frozenset(v.lower().removeprefix("0x") for v in values)
    if not out:
        # Fail closed: an empty allowlist is a mistake, never "allow everything".
        raise ConfigurationError(f"{name} is empty; pass None to disable the allowlist")
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerificationPolicy:
    """What counts as ``verified``. Every field has a safe default."""

    accepted_tcb_statuses: frozenset[str] = DEFAULT_ACCEPTED_TCB_STATUSES
    require_gpu: bool = True
    allowed_compose_hashes: frozenset[str] | None = None
    allowed_app_ids: frozenset[str] | None = None
    allowed_os_image_hashes: frozenset[str] | None = None
    allowed_mrtds: frozenset[str] | None = None
    allowed_rtmr0: frozenset[str] | None = None
    allowed_rtmr1: frozenset[str] | None = None
    allowed_rtmr2: frozenset[str] | None = None
    #: how long a verified attestation is reused (never past collateral or token validity)
    attestation_cache_ttl: float = 600.0
    #: total time budget for fetching one signature, retries included
    signature_deadline: float = 30.0
    #: total time budget for one attestation (report, collateral, NRAS)
    attestation_deadline: float = 60.0
    signing_algo: Literal["ecdsa", "ed25519"] = "ecdsa"
    #: accept the json.dumps(json.loads(body)) form some proxies sign (non-streamed bodies only)
    allow_json_normalized_hash: bool = True
    #: capture cap per response body; larger bodies end ``unverifiable`` / ``RESPONSE_TOO_LARGE``
    max_response_bytes: int = 32 * 1024 * 1024
    #: keep request/response bodies in receipts (False keeps only their hashes)
    receipt_bodies: bool = True
    # ---- legacy protocol: what the verdict needs beyond the signature (docs/code-identity.md) ----
    #: the served code must be pinned: MRTD, RTMR1 and RTMR2 pinned by this policy or matching an
    #: image of ``TrustAnchors.os_images``; otherwise ``measurements`` fails
    #: (``MEASUREMENT_NOT_ALLOWED``). False accepts any TD (``code_identity`` says "unpinned").
    require_code_pin: bool = True
    #: compare the model the response and the signed text name with the model requested
    #: (``MODEL_MISMATCH``; the comparison ignores case and provider prefix, docs/code-identity.md)
    check_served_model: bool = True
    #: add a random ``user`` field to every legacy request so that no earlier signature can match
    #: it (off by default: docs/code-identity.md, replay)
    request_nonce: bool = False
    # ---- ACI (SPEC §6) ----
    #: the gateway's receipt must show ``upstream.verified`` with ``result == "verified"``
    require_verified_upstream: bool = True
    #: send ``"provider": {"aci_verified": true}`` so the gateway refuses unverified serving
    send_aci_constraint: bool = True
    #: upstream provider names (the session's ``upstream_name``) accepted; None = any
    accepted_providers: tuple[str, ...] | None = None
    #: session claims that must be ``asserted`` (checked when the session is)
    required_session_claims: tuple[str, ...] = ("tee_attested",)
    #: fetch and check the upstream session record of every receipt
    check_session: bool = False
    #: re-verify the upstream's own evidence from the session (not implemented: never verified)
    deep_audit: bool = False
    #: seconds the receipt's ``served_at`` may lie outside our request's start..finish
    served_at_skew: float = 300.0
    #: longest accepted keyset lifetime (``not_after - now``), seconds; longer is implausible
    max_keyset_lifetime: float = 90 * 24 * 3600.0

    def __post_init__(self) -> None:
        statuses = frozenset(self.accepted_tcb_statuses)
        unknown = statuses - set(TCB_STATUSES)
        if unknown:
            raise ConfigurationError(f"unknown TCB statuses: {sorted(unknown)}")
        if not statuses:
            raise ConfigurationError("accepted_tcb_statuses is empty")
        object.__setattr__(self, "accepted_tcb_statuses", statuses)
        for name in _ALLOWLISTS:
            object.__setattr__(self, name, _normalise_hex_set(name, getattr(self, name)))
        if self.signing_algo not in ("ecdsa", "ed25519"):
            raise ConfigurationError(f"unknown signing_algo {self.signing_algo!r}")
        for name in ("attestation_cache_ttl", "signature_deadline", "attestation_deadline"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")
        if self.max_response_bytes <= 0:
            raise ConfigurationError("max_response_bytes must be positive")
        if self.accepted_providers is not None:
            object.__setattr__(
                self, "accepted_providers", _names("accepted_providers", self.accepted_providers)
            )
        claims = self.required_session_claims
        object.__setattr__(
            self, "required_session_claims", _names("required_session_claims", claims, empty=True)
        )
        for name in ("served_at_skew", "max_keyset_lifetime"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list) else v for k, v in self._as_dict.items()}

    @functools.cached_property
    def _as_dict(self) -> dict[str, Any]:
        # The policy is frozen: its dict and fingerprint are computed once (they were measurable
        # per call: every verification keys its cache and writes its receipt with them).
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = sorted(value) if isinstance(value, frozenset | tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerificationPolicy:
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            values[key] = frozenset(value) if isinstance(value, list) else value
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> VerificationPolicy:
        """A policy from a JSON object of field names (the :meth:`to_dict` form; absent fields
        keep their defaults). Unknown fields are refused: a misspelt pin must not vanish."""
        why = f"cannot read the policy file {path}"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{why}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"{why}: not a JSON object")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigurationError(f"{why}: unknown fields {unknown}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{why}: {exc}") from exc

    def fingerprint(self) -> str:
        """A stable digest of the policy, used in cache keys and receipts."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        blob = json.dumps(self._as_dict, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@functools.cache
def production_nras_ca_certs() -> tuple[bytes, ...]:
    """DER of the NRAS CA certificates pinned in production (shipped as package data)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = (
        resources.files("redpill_integrations")
        .joinpath("data", PRODUCTION_NRAS_CA_FILE)
        .read_bytes()
    )
    certs = x509.load_pem_x509_certificates(pem)
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def _check_nras_ca_certs(certs: Iterable[bytes]) -> tuple[bytes, ...]:
    from cryptography import x509

    if isinstance(certs, bytes | str):
        raise ConfigurationError("nras_ca_certs_der must be a collection of DER certificates")
    out = tuple(certs)
    if not out:
        raise ConfigurationError("nras_ca_certs_der is empty: no NRAS signing key could verify")
    for der in out:
        try:
            x509.load_der_x509_certificate(der)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("nras_ca_certs_der holds a non-certificate") from exc
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrustAnchors:
    """The roots a verification trusts and the services it may contact.

    ``intel_root_ca_der=None`` means Intel's real SGX root CA, as built into dcap-qvl
    (``dcap_qvl.verify``); any other root is verified with ``dcap_qvl.verify_with_root_ca``.
    The expected NRAS token issuer is the origin of ``nras_url``. NRAS's JWKS is trusted only
    for keys whose ``x5c`` chains to one of ``nras_ca_certs_der`` (NVIDIA's GPU attestation
    intermediate by default; ``docs/nvidia-nras-pinning.md``).

    ``kind`` is a free-text label. :attr:`is_production` is derived from the values; anchors
    labelled ``"production"`` whose values are not are relabelled ``"custom"`` (with a warning), so
    receipts never record a foreign root as production.
    """

    kind: str = "production"
    intel_root_ca_der: bytes | None = None
    pccs_url: str = PRODUCTION_PCCS_URL
    nras_url: str = PRODUCTION_NRAS_URL
    nras_jwks_url: str = PRODUCTION_NRAS_JWKS_URL
    #: the Redpill base URL the trust file was written for (emulator trust files carry it)
    base_url: str | None = None
    source: str | None = None
    #: accepted dstack KMS root keys (compressed secp256k1, hex) of ACI key custody chains
    kms_root_pubkeys: tuple[str, ...] = PRODUCTION_KMS_ROOT_PUBKEYS
    #: accepted dstack app ids (20 bytes, hex) of the ACI gateway
    aci_app_ids: tuple[str, ...] = PRODUCTION_ACI_APP_IDS
    #: the OS-image registry: ``os_image_hash → OsImage``; the gateway's image must be listed
    os_images: Mapping[str, OsImage] = dataclasses.field(
        default_factory=lambda: production_os_images(), hash=False
    )
    #: DER certificates an NRAS signing key's x5c chain must end at or be issued by
    nras_ca_certs_der: tuple[bytes, ...] = dataclasses.field(
        default_factory=production_nras_ca_certs
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "nras_ca_certs_der", _check_nras_ca_certs(self.nras_ca_certs_der))
        for name in ("pccs_url", "nras_url", "nras_jwks_url"):
            _check_url(name, getattr(self, name))
        if self.base_url is not None:
            _check_url("base_url", self.base_url)
        object.__setattr__(
            self, "kms_root_pubkeys", _hex_tuple("kms_root_pubkeys", self.kms_root_pubkeys, 33)
        )
        object.__setattr__(self, "aci_app_ids", _hex_tuple("aci_app_ids", self.aci_app_ids, 20))
        object.__setattr__(self, "os_images", _os_image_map(self.os_images))
        if self.kind == "production" and self.differences():
            logger.warning(
                "Trust anchors labelled 'production' differ from production (%s): treated as "
                "custom, NON-PRODUCTION trust.",
                ", ".join(self.differences()),
            )
            object.__setattr__(self, "kind", "custom")

    def differences(self) -> tuple[str, ...]:
        """What differs from the production anchors (empty for production). Narrowing the
        production NRAS CAs, KMS roots, ACI app ids or OS images to a subset is still
        production."""
        out = ["custom Intel root CA"] if self.intel_root_ca_der is not None else []
        for name, value in (
            ("pccs_url", PRODUCTION_PCCS_URL),
            ("nras_url", PRODUCTION_NRAS_URL),
            ("nras_jwks_url", PRODUCTION_NRAS_JWKS_URL),
        ):
            if getattr(self, name) != value:
                out.append(f"{name}={getattr(self, name)}")
        if not set(self.nras_ca_certs_der) <= set(production_nras_ca_certs()):
            out.append("custom nras_ca_certs_der")
        if not set(self.kms_root_pubkeys) <= set(PRODUCTION_KMS_ROOT_PUBKEYS):
            out.append("custom kms_root_pubkeys")
        if not set(self.aci_app_ids) <= set(PRODUCTION_ACI_APP_IDS):
            out.append("custom aci_app_ids")
        production_images = _production_os_images()
        if any(production_images.get(k) != v for k, v in self.os_images.items()):
            out.append("custom os_images")
        return tuple(out)

    @property
    def is_production(self) -> bool:
        """True only when :meth:`differences` is empty (Intel's built-in root, the production
        URLs, NRAS CAs, KMS roots, ACI app ids and OS images)."""
        return not self.differences()

    def warn_if_not_production(self, user: str) -> None:
        """Log a warning naming what differs when these anchors are not production."""
        differences = self.differences()
        if differences:
            logger.warning(
                "%s uses NON-PRODUCTION trust anchors (kind %r: %s): verdicts prove nothing "
                "about real TEE hardware.",
                user,
                self.kind,
                ", ".join(differences),
            )

    @property
    def nras_ca_spki_sha256(self) -> tuple[str, ...]:
        """Lower-hex SPKI sha256 of each pinned NRAS CA certificate (for display and logs)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        der_spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return tuple(
            hashlib.sha256(
                x509.load_der_x509_certificate(der).public_key().public_bytes(*der_spki)
            ).hexdigest()
            for der in self.nras_ca_certs_der
        )

    @property
    def nras_issuer(self) -> str:
        parts = urlsplit(self.nras_url)
        return f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def production(cls) -> TrustAnchors:
        return cls()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustAnchors:
        """Load a non-production trust file (SPEC §5), e.g. the emulator's. Logs a warning."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read trust file {path}: {exc}") from exc
        anchors = cls.from_dict(data, source=str(path))
        logger.warning(
            "Using NON-PRODUCTION trust anchors of kind %r from %s: verdicts prove nothing about "
            "real TEE hardware.",
            anchors.kind,
            path,
        )
        return anchors

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> TrustAnchors:
        if not isinstance(data, Mapping):
            raise ConfigurationError("trust file must hold a JSON object")
        try:
            kind = str(data["kind"])
            root_b64 = data.get("intel_root_ca_der_b64")
            root = base64.b64decode(root_b64, validate=True) if root_b64 else None
            return cls(
                kind=kind,
                intel_root_ca_der=root,
                pccs_url=str(data["pccs_url"]),
                nras_url=str(data["nras_url"]),
                nras_jwks_url=str(data["nras_jwks_url"]),
                base_url=str(data["base_url"]) if data.get("base_url") else None,
                source=source,
                **_nras_ca_from_dict(data),
                **_aci_anchors(data),
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ConfigurationError(f"invalid trust file: missing or bad field {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "intel_root_ca_der_b64": (
                base64.b64encode(self.intel_root_ca_der).decode()
                if self.intel_root_ca_der
                else None
            ),
            "pccs_url": self.pccs_url,
            "nras_url": self.nras_url,
            "nras_jwks_url": self.nras_jwks_url,
            "base_url": self.base_url,
            "nras_ca_certs_der_b64": [base64.b64encode(c).decode() for c in self.nras_ca_certs_der],
            "kms_root_pubkeys": list(self.kms_root_pubkeys),
            "aci_app_ids": list(self.aci_app_ids),
            "os_images": {h: image.to_dict() for h, image in self.os_images.items()},
        }

    @classmethod
    def from_env(cls) -> TrustAnchors:
        """``REDPILL_TRUST_FILE`` when set (with a warning), production otherwise."""
        path = os.environ.get("REDPILL_TRUST_FILE")
        return cls.from_file(path) if path else cls.production()


def _nras_ca_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """``nras_ca_certs_der`` from a trust file; absent means NVIDIA's production pin."""
    certs = data.get("nras_ca_certs_der_b64")
    if certs is None:
        return {}
    if not isinstance(certs, list) or not all(isinstance(c, str) for c in certs):
        raise ConfigurationError("nras_ca_certs_der_b64 must be a list of base64 strings")
    return {"nras_ca_certs_der": tuple(base64.b64decode(c, validate=True) for c in certs)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class OsImage:
    """One entry of the OS-image registry. Measurements are lower-case hex (48 bytes) or None.

    With measurements, a gateway quote must carry exactly these MRTD/RTMR1/RTMR2; without them
    the entry matches on its ``os_image_hash`` alone (the measured ``os-image-hash`` event).
    """

    name: str
    mrtd: str | None = None
    rtmr1: str | None = None
    rtmr2: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for name in ("mrtd", "rtmr1", "rtmr2"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _hex_tuple(f"os image {name}", (value,), 48)[0])

    @property
    def has_measurements(self) -> bool:
        return self.mrtd is not None or self.rtmr1 is not None or self.rtmr2 is not None

    @property
    def fully_measured(self) -> bool:
        """MRTD, RTMR1 and RTMR2 are all known: only such an entry pins legacy code."""
        return self.mrtd is not None and self.rtmr1 is not None and self.rtmr2 is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OsImage:
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise ConfigurationError("an os_images entry must be an object with a name")
        return cls(
            name=data["name"],
            mrtd=data.get("mrtd"),
            rtmr1=data.get("rtmr1"),
            rtmr2=data.get("rtmr2"),
            source=data.get("source"),
        )


@functools.cache
def _production_os_images() -> Mapping[str, OsImage]:
    data = resources.files("redpill_integrations").joinpath("data")
    images = _os_image_map(json.loads(data.joinpath("aci_os_images.json").read_text())["images"])
    legacy = json.loads(data.joinpath("os_images_legacy.json").read_text())["images"]
    for entry in legacy:
        (digest,) = _hex_tuple("os_images_legacy key", (entry["os_image_hash"],), 32)
        if digest in images:
            raise ConfigurationError(f"os image {digest} is listed twice in the shipped registry")
        named = {**entry, "name": entry.get("name") or f"unnamed dstack image {digest[:12]}"}
        images[digest] = OsImage.from_dict(named)
    return images


def production_os_images() -> dict[str, OsImage]:
    """The shipped, dated OS-image registry: ``data/aci_os_images.json`` (ACI gateway images) and
    ``data/os_images_legacy.json`` (images measured in real legacy reports)."""
    return dict(_production_os_images())


def _os_image_map(images: Mapping[str, Any]) -> dict[str, OsImage]:
    if not isinstance(images, Mapping):
        raise ConfigurationError("os_images must be a mapping of os_image_hash to entries")
    out: dict[str, OsImage] = {}
    for key, entry in images.items():
        (digest,) = _hex_tuple("os_images key", (key,), 32)
        out[digest] = entry if isinstance(entry, OsImage) else OsImage.from_dict(entry)
    return out


def _hex_tuple(name: str, values: Iterable[str], nbytes: int) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ConfigurationError(f"{name} must be a collection of hex strings")
    out: list[str] = []
    for value in values:
        text = value.lower().removeprefix("0x") if isinstance(value, str) else ""
        try:
            ok = len(bytes.fromhex(text)) == nbytes
        except ValueError:
            ok = False
        if not ok:
            raise ConfigurationError(f"{name}: {str(value)[:80]!r} is not {nbytes} bytes of hex")
        out.append(text)
    if not out:
        raise ConfigurationError(f"{name} is empty")
    return tuple(dict.fromkeys(out))


def _names(name: str, values: Iterable[str], *, empty: bool = False) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(f"{name} must be a collection of non-empty strings")
    out = tuple(sorted(set(values)))
    if not out and not empty:
        raise ConfigurationError(f"{name} is empty; pass None to accept any")
    return out


def _aci_anchors(data: Mapping[str, Any]) -> dict[str, Any]:
    """The ACI keys of a trust file; absent keys keep the production values."""
    out: dict[str, Any] = {}
    for key in ("kms_root_pubkeys", "aci_app_ids"):
        if data.get(key) is not None:
            out[key] = tuple(data[key])
    if data.get("os_images") is not None:
        out["os_images"] = data["os_images"]
    return out


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"{name} is not an http(s) URL: {url!r}")
