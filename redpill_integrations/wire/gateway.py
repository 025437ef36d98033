"""What the configured gateway speaks, and what it says about its models (one cached probe;
``docs/aci-wire.md`` §2).

One ``GET {base}/models`` (API key: base origin only) answers both questions:

* **the protocol**: any ``X-ACI-*`` response header (an ACI gateway sets them on every response,
  errors included) → ``"aci"``, with ``X-ACI-Keyset-Digest`` as the gateway's current keyset digest.
  Without them, ``GET {origin}/`` is asked too (an ACI gateway answers
  ``{"api_version":"aci/1",…}``); neither → ``"legacy"``. Headers are hints that choose what to
  *send* and what to *refuse early*; every verdict is decided per response by its own headers and
  evidence (:mod:`.protocols`), never by this probe.
* **the models**: ``data[].id`` with ``is_tee`` when the listing has a JSON boolean there.

The answer is shared by concurrent callers (single-flight) and kept for
``policy.attestation_cache_ttl`` seconds. A probe that reached nothing (network error, a refused
host) is shared with concurrent waiters but never kept: :attr:`GatewayInfo.problem` says why, and
the protocol is then ``"legacy"`` (the conservative reading: the TEE-prefix pre-check applies and
no ACI constraint is sent; the verdict still follows the response).

Pure decisions (:func:`parse_listing`, :func:`precheck_reason`, :func:`aci_extras`) are separate
from the flow so both drivers and tests share them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason
from redpill_integrations.verify.encoding import loads_strict
from redpill_integrations.wire.flow import Fetched, FetchFailed, Flow, Shared
from redpill_integrations.wire.http import DEFAULT_TIMEOUT, Budget, Endpoints

__all__ = [
    "ACI_CONSTRAINT",
    "GatewayInfo",
    "GatewayProbe",
    "ModelInfo",
    "aci_extras",
    "gateway_flow",
    "is_aci_headers",
    "parse_listing",
    "precheck_reason",
]

MAX_LISTING_BYTES = 4 * 1024 * 1024
MAX_ROOT_BYTES = 64 * 1024

#: The request-body member that makes an ACI gateway refuse (503, signed refusal receipt) instead
#: of forwarding to an upstream it did not verify (docs/protocol-aci.md).
ACI_CONSTRAINT: Mapping[str, Any] = {"provider": {"aci_verified": True}}

Protocol = Literal["aci", "legacy"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayInfo:
    """What the gateway at the base URL speaks: ``protocol`` and, for ACI, the keyset digest its
    headers named (``sha256:<hex>``; a hint, verified only through an attestation). ``problem``
    is set when the probe reached nothing (then ``protocol`` is ``"legacy"``)."""

    protocol: Protocol
    keyset_digest: str | None = None
    problem: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """One model as ``/v1/models`` lists it: ``is_tee`` is the listing's JSON boolean, ``None``
    when the model is not listed or carries no such flag."""

    id: str
    is_tee: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayProbe:
    """One probe's answer: the gateway and its model listing (empty when unreadable)."""

    gateway: GatewayInfo
    models: Mapping[str, ModelInfo] = dataclasses.field(default_factory=dict)

    def model(self, model: str) -> ModelInfo:
        return self.models.get(model) or ModelInfo(id=model)


def is_aci_headers(headers: Mapping[str, str]) -> bool:
    """Whether response headers (any case) name the ACI protocol: any ``x-aci-*`` header."""
    return any(name.lower().startswith("x-aci-") for name in headers)


def _digest_of(headers: Mapping[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "x-aci-keyset-digest":
            return value
    return None


def parse_listing(body: bytes) -> dict[str, ModelInfo]:
    """``{id: ModelInfo}`` from a ``/v1/models`` body; entries that are not objects with a string
    ``id`` are skipped, a non-boolean ``is_tee`` is ``None``. An unreadable listing (not JSON,
    duplicate keys, too deep or too large) is empty: nothing is claimed about any model."""
    try:
        data = loads_strict(body, what="model listing", max_bytes=MAX_LISTING_BYTES)
    except EvidenceError:
        return {}
    entries = data.get("data") if isinstance(data, dict) else None
    out: dict[str, ModelInfo] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        flag = entry.get("is_tee")
        is_tee = flag if isinstance(flag, bool) else None
        out[entry["id"]] = ModelInfo(id=entry["id"], is_tee=is_tee)
    return out


def _root_says_aci(answer: Fetched | FetchFailed) -> bool:
    if isinstance(answer, FetchFailed):
        return False
    if is_aci_headers(answer.headers):
        return True
    if answer.status_code != 200:
        return False
    try:
        data = loads_strict(answer.body, what="gateway root", max_bytes=MAX_ROOT_BYTES)
    except EvidenceError:
        return False
    return isinstance(data, dict) and data.get("api_version") == "aci/1"


def _probe(endpoints: Endpoints, budget: Budget) -> Flow[GatewayProbe]:
    answer = yield from endpoints.fetch(
        budget, "GET", f"{endpoints.base_url}/models", MAX_LISTING_BYTES
    )
    models: dict[str, ModelInfo] = {}
    if isinstance(answer, Fetched):
        if answer.status_code == 200:
            models = parse_listing(answer.body)
        if is_aci_headers(answer.headers):
            info = GatewayInfo(protocol="aci", keyset_digest=_digest_of(answer.headers))
            return GatewayProbe(gateway=info, models=models)
    root_url = str(httpx.URL(endpoints.base_url).copy_with(path="/", query=None))
    root = yield from endpoints.fetch(budget, "GET", root_url, MAX_ROOT_BYTES)
    if _root_says_aci(root):
        headers = root.headers if isinstance(root, Fetched) else {}
        info = GatewayInfo(protocol="aci", keyset_digest=_digest_of(dict(headers)))
        return GatewayProbe(gateway=info, models=models)
    if isinstance(answer, FetchFailed) and isinstance(root, FetchFailed):
        problem = f"gateway probe reached nothing: {answer.detail}"
        return GatewayProbe(gateway=GatewayInfo(protocol="legacy", problem=problem))
    return GatewayProbe(gateway=GatewayInfo(protocol="legacy"), models=models)


def gateway_flow(
    endpoints: Endpoints,
    *,
    policy: VerificationPolicy,
    monotonic: Callable[[], float] = time.monotonic,
) -> Flow[GatewayProbe]:
    """The gateway probe, shared and cached (see the module docstring)."""

    def ttl(value: GatewayProbe) -> float:
        return 0.0 if value.gateway.problem else policy.attestation_cache_ttl

    def make() -> Flow[GatewayProbe]:
        return _probe(endpoints, Budget(DEFAULT_TIMEOUT.read or 30.0, monotonic))

    probe: GatewayProbe = yield Shared(("gateway-probe", endpoints.base_url), make, ttl)
    return probe


def precheck_reason(
    probe: GatewayProbe, model: str | None, *, is_tee_model: Callable[[str | None], bool]
) -> Reason | None:
    """What a strict pre-check should refuse before sending: under ACI, ``MODEL_NOT_TEE`` only
    when the listing says ``is_tee: false`` (unknown → ``None``: the receipt decides; the model's
    prefix is not the test); under legacy, the verifier's own TEE-prefix rule."""
    if probe.gateway.protocol == "aci":
        if not model:
            return None  # the verdict says MALFORMED_RESPONSE; nothing to refuse by name
        return Reason.MODEL_NOT_TEE if probe.model(model).is_tee is False else None
    return None if is_tee_model(model) else Reason.MODEL_NOT_TEE


def aci_extras(probe: GatewayProbe, mode: str, policy: VerificationPolicy) -> dict[str, Any]:
    """The extra request-body fields of one call: the ``aci_verified`` constraint when the
    gateway is ACI, ``mode == "strict"`` and ``policy.send_aci_constraint``; else ``{}``."""
    if probe.gateway.protocol == "aci" and mode == "strict" and policy.send_aci_constraint:
        return {"provider": dict(ACI_CONSTRAINT["provider"])}
    return {}
