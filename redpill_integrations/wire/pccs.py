"""A PCCS client producing dcap-qvl ``QuoteCollateralV3`` JSON, as dcap-qvl's own
``get_collateral_for_fmspc`` does (Phala-Network/dcap-qvl ``src/collateral.rs``), over httpx:

* ``GET {pccs}/sgx/certification/v4/pckcrl?ca={processor|platform}&encoding=der`` → DER CRL body,
  issuer chain in ``SGX-PCK-CRL-Issuer-Chain`` (URL-encoded PEM);
* ``GET {pccs}/tdx/certification/v4/tcb?fmspc={FMSPC}`` → ``{"tcbInfo": …, "signature": hex}``,
  chain in ``SGX-TCB-Info-Issuer-Chain`` or ``TCB-Info-Issuer-Chain``;
* ``GET {pccs}/tdx/certification/v4/qe/identity?update=standard`` → ``{"enclaveIdentity": …,
  "signature": hex}``, chain in ``SGX-Enclave-Identity-Issuer-Chain``;
* ``GET {pccs}/sgx/certification/v4/rootcacrl`` → the root CA CRL, hex-encoded (DER accepted too).

Unlike dcap-qvl we never fall back to the CRL distribution point named in a certificate: no URL
taken from a server answer is fetched. ``tcb_info`` / ``qe_identity`` are the exact JSON substrings
of the answers (the signatures cover those bytes), never re-serialized. Collateral is cached per
(PCCS, FMSPC, CA) until the earliest ``nextUpdate`` among TCB info, QE identity and the two CRLs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote

import dcap_qvl
from cryptography import x509

from redpill_integrations.errors import EvidenceError, MalformedEvidence
from redpill_integrations.verify.encoding import loads_strict
from redpill_integrations.wire.flow import Fetched, FetchFailed, Flow, Shared
from redpill_integrations.wire.http import DEFAULT_TIMEOUT, Budget, Endpoints

__all__ = ["Collateral", "collateral_flow", "json_member_text"]

MAX_COLLATERAL_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Collateral:
    """``json`` is ``QuoteCollateralV3.to_json()`` form, or ``None`` with ``problem``."""

    json: str | None
    problem: str | None = None
    next_update: datetime | None = None


def json_member_text(body: str, member: str) -> str:
    """The exact text of a top-level member's value in the JSON object ``body``."""
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    i = 0
    while i < len(body) and body[i] in ws:
        i += 1
    if i >= len(body) or body[i] != "{":
        raise MalformedEvidence("PCCS answer is not a JSON object")
    i += 1
    try:
        while True:
            while body[i] in ws or body[i] == ",":
                i += 1
            if body[i] == "}":
                break
            key, i = decoder.raw_decode(body, i)
            while body[i] in ws:
                i += 1
            if body[i] != ":":
                raise MalformedEvidence("PCCS answer is not a JSON object")
            i += 1
            while body[i] in ws:
                i += 1
            start = i
            _, i = decoder.raw_decode(body, i)
            if key == member:
                return body[start:i]
    except (ValueError, IndexError) as exc:
        raise MalformedEvidence(f"PCCS answer is not valid JSON around {member!r}") from exc
    raise MalformedEvidence(f"PCCS answer lacks {member!r}")


def _header(answer: Fetched, *names: str) -> str:
    for name in names:
        value = answer.headers.get(name)
        if value:
            return unquote(value)
    raise MalformedEvidence(f"PCCS answer lacks header {names[0]}")


def _signed_json(answer: Fetched, member: str) -> tuple[str, bytes, datetime]:
    try:
        text = answer.body.decode("utf-8")
        data = loads_strict(text, what=f"PCCS {member} answer")
        signature = bytes.fromhex(data["signature"])
        next_update = datetime.fromisoformat(data[member]["nextUpdate"].replace("Z", "+00:00"))
    except (
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        EvidenceError,
    ) as exc:
        raise MalformedEvidence(f"PCCS {member} answer is malformed") from exc
    return json_member_text(text, member), signature, next_update


def _crl_next_update(der: bytes) -> datetime:
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise MalformedEvidence("PCCS CRL is not DER") from exc
    nu = crl.next_update_utc
    return nu if nu is not None else datetime.now(UTC)


def _root_crl(body: bytes) -> bytes:
    text = body.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return body  # some servers answer DER


def _assemble(answers: dict[str, Fetched]) -> Collateral:
    pck, tcb, qe, root = answers["pck"], answers["tcb"], answers["qe"], answers["root"]
    tcb_info, tcb_sig, tcb_next = _signed_json(tcb, "tcbInfo")
    qe_identity, qe_sig, qe_next = _signed_json(qe, "enclaveIdentity")
    root_der = _root_crl(root.body)
    collateral = dcap_qvl.QuoteCollateralV3(
        _header(pck, "SGX-PCK-CRL-Issuer-Chain"),
        root_der,
        pck.body,
        _header(tcb, "SGX-TCB-Info-Issuer-Chain", "TCB-Info-Issuer-Chain"),
        tcb_info,
        tcb_sig,
        _header(qe, "SGX-Enclave-Identity-Issuer-Chain"),
        qe_identity,
        qe_sig,
    )
    next_update = min(tcb_next, qe_next, _crl_next_update(pck.body), _crl_next_update(root_der))
    return Collateral(json=str(collateral.to_json()), next_update=next_update)


def _fetch_collateral(
    endpoints: Endpoints, budget: Budget, pccs_url: str, fmspc: str, ca: str
) -> Flow[Collateral]:
    base = pccs_url.rstrip("/")
    for suffix in ("/sgx/certification/v4", "/tdx/certification/v4"):
        base = base.removesuffix(suffix)
    urls = {
        "pck": (f"{base}/sgx/certification/v4/pckcrl", {"ca": ca, "encoding": "der"}),
        "tcb": (f"{base}/tdx/certification/v4/tcb", {"fmspc": fmspc.upper()}),
        "qe": (f"{base}/tdx/certification/v4/qe/identity", {"update": "standard"}),
        "root": (f"{base}/sgx/certification/v4/rootcacrl", None),
    }
    answers: dict[str, Fetched] = {}
    for name, (url, params) in urls.items():
        answer = yield from endpoints.fetch(budget, "GET", url, MAX_COLLATERAL_BYTES, params=params)
        if isinstance(answer, FetchFailed):
            return Collateral(None, f"PCCS {name}: {answer.detail}")
        if answer.status_code != 200:
            return Collateral(None, f"PCCS {name}: HTTP {answer.status_code}")
        answers[name] = answer
    try:
        return _assemble(answers)
    except (MalformedEvidence, ValueError, TypeError) as exc:
        return Collateral(None, f"PCCS collateral unusable: {exc}")


def collateral_flow(
    endpoints: Endpoints,
    *,
    pccs_url: str,
    fmspc: str,
    ca: str,
    now: Callable[[], datetime],
    budget: Budget | None = None,
) -> Flow[Collateral]:
    """Collateral for one FMSPC, shared between concurrent callers and cached within validity."""

    def ttl(value: Collateral) -> float:
        if value.json is None or value.next_update is None:
            return 0.0
        return max(0.0, (value.next_update - now()).total_seconds())

    key = ("collateral", pccs_url, fmspc.lower(), ca)
    limit = budget or Budget(DEFAULT_TIMEOUT.read or 30.0, time.monotonic)
    result: Collateral = yield Shared(
        key, lambda: _fetch_collateral(endpoints, limit, pccs_url, fmspc, ca), ttl
    )
    return result
