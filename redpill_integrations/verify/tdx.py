"""TDX quotes: parsing, DCAP verification through dcap-qvl, report_data binding.

``report_data`` (64 bytes) binds the signing key and our nonce (``docs/protocol-legacy.md`` §5)::

    plain:      address_bytes ‖ zero padding to 32 bytes ‖ nonce(32)
    TLS-bound:  sha256(address_bytes ‖ bytes.fromhex(tls_cert_fingerprint)) ‖ nonce(32)

where ``address_bytes`` is the 20-byte ecdsa address or the 32-byte ed25519 public key. The
TLS-bound form is used exactly when the node's report carries ``tls_cert_fingerprint`` (checked
against the recorded NEAR reports).
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any

import dcap_qvl
from cryptography import x509

from redpill_integrations.errors import EvidenceError, MalformedEvidence
from redpill_integrations.verify.encoding import loads_strict
from redpill_integrations.verify.report import NodeAttestation

__all__ = [
    "QuoteVerification",
    "TdFields",
    "collateral_valid_until",
    "epoch_seconds",
    "expected_report_data",
    "parse_td_quote",
    "quote_fmspc",
    "quote_pck_ca",
    "verify_quote",
]


@dataclasses.dataclass(frozen=True, slots=True)
class TdFields:
    """The measured fields of a TDX quote body (TD report 1.0 layout, also inside 1.5)."""

    mrtd: bytes
    mr_config_id: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    td_attributes: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class QuoteVerification:
    """dcap-qvl's answer. ``error`` set means the quote (or its chain) did not verify."""

    status: str | None
    advisory_ids: tuple[str, ...] = ()
    error: str | None = None
    collateral_unusable: bool = False  # the collateral itself could not be loaded
    valid_until: datetime | None = None


def epoch_seconds(now: datetime) -> int:
    """Unix seconds of ``now``; a naive datetime is taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int(now.timestamp())


def _parse(quote: bytes) -> Any:
    if not isinstance(quote, bytes | bytearray) or len(quote) < 48:
        raise MalformedEvidence("quote is too short")
    try:
        return dcap_qvl.parse_quote(bytes(quote))
    except ValueError as exc:
        raise MalformedEvidence(f"quote does not parse: {str(exc)[:160]}") from exc


def parse_td_quote(quote: bytes) -> TdFields:
    """The TD report fields of a TDX quote. Raises :class:`MalformedEvidence` (also for SGX)."""
    report = _parse(quote).report
    if not hasattr(report, "mr_td"):
        raise MalformedEvidence("quote is not a TDX quote")
    return TdFields(
        mrtd=bytes(report.mr_td),
        mr_config_id=bytes(report.mr_config_id),
        rtmrs=(
            bytes(report.rt_mr0),
            bytes(report.rt_mr1),
            bytes(report.rt_mr2),
            bytes(report.rt_mr3),
        ),
        report_data=bytes(report.report_data),
        td_attributes=bytes(report.td_attributes),
    )


def quote_fmspc(quote: bytes) -> str:
    """The FMSPC (lower-case hex) of the PCK certificate embedded in ``quote``; the wire layer uses
    it to fetch collateral. Raises ``MalformedEvidence``."""
    try:
        fmspc = str(_parse(quote).fmspc()).lower()
    except ValueError as exc:
        raise MalformedEvidence(f"quote carries no readable FMSPC: {str(exc)[:160]}") from exc
    if len(fmspc) != 12:
        raise MalformedEvidence("quote FMSPC is not 6 bytes")
    return fmspc


def quote_pck_ca(quote: bytes) -> str:
    """``"platform"`` or ``"processor"``: the PCK CA of the quote's chain (for ``pckcrl?ca=``).

    Raises ``MalformedEvidence``."""
    try:
        ca = str(_parse(quote).ca()).lower()
    except ValueError as exc:
        raise MalformedEvidence(f"quote carries no readable PCK CA: {str(exc)[:160]}") from exc
    if ca not in ("platform", "processor"):
        raise MalformedEvidence(f"unknown PCK CA {ca[:32]!r}")
    return ca


def expected_report_data(node: NodeAttestation, nonce: bytes) -> bytes:
    """The 64 bytes a genuine quote of ``node`` carries for our ``nonce`` (module docstring)."""
    if len(nonce) != 32:
        raise MalformedEvidence("nonce must be 32 bytes")
    address = bytes.fromhex(node.signing_address)
    if node.tls_cert_fingerprint is not None:
        first = hashlib.sha256(address + bytes.fromhex(node.tls_cert_fingerprint)).digest()
    else:
        first = address.ljust(32, b"\x00")
    return first + nonce


def verify_quote(
    quote: bytes, collateral_json: str, *, root_ca_der: bytes | None, now: datetime
) -> QuoteVerification:
    """Verify ``quote`` under Intel's chain (``root_ca_der=None``) or a given root. Never raises."""
    try:
        collateral = dcap_qvl.QuoteCollateralV3.from_json(collateral_json)
    except (ValueError, TypeError) as exc:
        return QuoteVerification(
            status=None, error=f"collateral unusable: {str(exc)[:200]}", collateral_unusable=True
        )
    at = epoch_seconds(now)
    try:
        if root_ca_der is None:
            verified = dcap_qvl.verify(bytes(quote), collateral, at)
        else:
            verified = dcap_qvl.verify_with_root_ca(bytes(quote), collateral, root_ca_der, at)
    except (ValueError, TypeError) as exc:
        return QuoteVerification(status=None, error=" ".join(str(exc).split())[:300])
    return QuoteVerification(
        status=str(verified.status),
        advisory_ids=tuple(str(a) for a in verified.advisory_ids),
        valid_until=collateral_valid_until(collateral),
    )


def collateral_valid_until(collateral: Any) -> datetime | None:
    """The earliest ``nextUpdate`` among the TCB info, QE identity and both CRLs (best effort)."""
    moments: list[datetime] = []
    for text in (collateral.tcb_info, collateral.qe_identity):
        try:
            inner = loads_strict(text, what="collateral JSON")
            body = inner.get("tcbInfo") or inner.get("enclaveIdentity") or inner
            moments.append(datetime.fromisoformat(str(body["nextUpdate"]).replace("Z", "+00:00")))
        except (EvidenceError, ValueError, KeyError, TypeError, AttributeError):
            continue
    for der in (collateral.root_ca_crl, collateral.pck_crl):
        try:
            crl = x509.load_der_x509_crl(bytes(der))
        except ValueError:
            continue
        if crl.next_update_utc is not None:
            moments.append(crl.next_update_utc)
    moments = [m if m.tzinfo else m.replace(tzinfo=UTC) for m in moments]
    return min(moments) if moments else None
