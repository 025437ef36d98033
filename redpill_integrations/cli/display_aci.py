"""Renderings for the ACI protocol: the gateway's trust chain, the upstream, the checks.

Pure functions from verdicts to text or JSON-ready dicts, like :mod:`.display` (whose
:func:`~.display.printable` every rendered string goes through). Under ACI the chain is the
gateway's, not a model node's: a TDX quote binds the gateway's keyset digest and our nonce; the
event log, compose hash, app id and OS image say what runs; the dstack KMS custody chains say the
KMS released the receipt key to that app; a receipt key of that keyset signs every response's
receipt; the receipt names the upstream the gateway verified. See ``docs/protocol-aci.md``.

:class:`GatewayChain` is the one view both sources fill: :func:`chain_from_gateway` (a fresh
``redpill attest``) and :func:`chain_from_result` (a verdict, e.g. ``redpill chat`` or a stored
receipt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from redpill_integrations.cli.display import printable, render_result
from redpill_integrations.results import (
    ACI_CHECKS,
    AciSummary,
    Check,
    CheckOutcome,
    UpstreamSummary,
    VerificationResult,
)
from redpill_integrations.verify.aci.identity import GatewayVerdict

__all__ = [
    "ACI_MEANINGS",
    "GatewayChain",
    "chain_from_gateway",
    "chain_from_result",
    "render_aci_checks",
    "render_gateway_chain",
    "render_upstream",
    "render_verdict",
]

_MARK = {CheckOutcome.PASS: "✔", CheckOutcome.FAIL: "✘", CheckOutcome.NOT_CHECKED: "·"}

#: What a pass of each ACI check proves, no more (the gateway signs; it asserts the upstream).
ACI_MEANINGS: Mapping[str, str] = {
    Check.KEYSET: "keyset digest recomputes; keys per role; not expired",
    Check.REPORT_DATA: "TDX report_data = sha256 of the statement naming that keyset digest",
    Check.NONCE: "the statement carries our fresh nonce",
    Check.QUOTE: "TDX quote verifies under the Intel DCAP chain",
    Check.TCB: "platform TCB status accepted by policy",
    Check.EVENT_LOG: "event log replays to the quote's RTMRs",
    Check.COMPOSE: "app compose hash matches the measured event",
    Check.MEASUREMENTS: "OS image, app id and measurements accepted",
    Check.KEY_CUSTODY: "dstack KMS released the receipt key to this app (accepted root)",
    Check.SIGNATURE: "receipt signature is valid (Ed25519 over its canonical JSON)",
    Check.SIGNER_ATTESTED: "the signing key is a receipt key of the attested keyset",
    Check.RECEIPT: "receipt names this exchange: id, chat id, endpoint, served_at",
    Check.REQUEST_HASH: "receipt's request hash = sha256 of the bytes we sent",
    Check.RESPONSE_HASH: "receipt's response hash = sha256 of the bytes we received",
    Check.UPSTREAM: "the gateway verified the upstream (its assertion, signed)",
    Check.SESSION: "upstream session record recomputes (policy option)",
}


def _p(text: object) -> str:
    return printable(text)


def _field(value: object) -> str:
    return _p(value) if value not in (None, "") else "-"


def _short(value: str | None, keep: int = 24) -> str:
    if not value:
        return "-"
    return _p(value if len(value) <= keep + 2 else f"{value[:keep]}…")


def _outcome(checks: Mapping[str, CheckOutcome], name: str) -> CheckOutcome:
    return CheckOutcome(checks.get(name, CheckOutcome.NOT_CHECKED))


def render_aci_checks(checks: Mapping[str, CheckOutcome], *, indent: str = "  ") -> str:
    """One line per ACI check (missing ones as not checked), then any other check present."""
    known = {c.value for c in ACI_CHECKS}
    rows = [(c.value, ACI_MEANINGS[c]) for c in ACI_CHECKS]
    rows += [(name, "") for name in sorted(checks) if name not in known]
    lines = []
    for name, meaning in rows:
        mark = _MARK[_outcome(checks, name)]
        lines.append(f"{indent}{mark} {_p(name):<16} {meaning}".rstrip())
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayChain:
    """The gateway's trust chain as shown to a human (or as ``--json``)."""

    checks: Mapping[str, CheckOutcome]
    nonce: str | None = None
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    mrtd: str | None = None
    rtmrs: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None)
    compose_hash: str | None = None
    app_id: str | None = None
    os_image_hash: str | None = None
    os_image_name: str | None = None
    kms_root: str | None = None
    custody: tuple[tuple[str, str], ...] = ()  # (role, purpose) per custody entry
    keyset_digest: str | None = None
    keyset_not_after: datetime | None = None
    receipt_keys: tuple[str, ...] = ()  # key ids
    source_commit: str | None = None
    repo_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``): every field, times as ISO-8601, checks as strings."""
        return {
            "checks": {k: CheckOutcome(v).value for k, v in self.checks.items()},
            "nonce": self.nonce,
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "mrtd": self.mrtd,
            "rtmr0": self.rtmrs[0],
            "rtmr1": self.rtmrs[1],
            "rtmr2": self.rtmrs[2],
            "rtmr3": self.rtmrs[3],
            "compose_hash": self.compose_hash,
            "app_id": self.app_id,
            "os_image_hash": self.os_image_hash,
            "os_image_name": self.os_image_name,
            "kms_root": self.kms_root,
            "key_custody": [{"role": r, "purpose": p} for r, p in self.custody],
            "keyset_digest": self.keyset_digest,
            "keyset_not_after": (
                self.keyset_not_after.isoformat() if self.keyset_not_after else None
            ),
            "receipt_keys": list(self.receipt_keys),
            "source_commit": self.source_commit,
            "repo_url": self.repo_url,
        }


def chain_from_gateway(
    verdict: GatewayVerdict, *, os_image_names: Mapping[str, str] | None = None
) -> GatewayChain:
    """The chain of a freshly verified gateway identity (``redpill attest`` under ACI)."""
    report, td, identity = verdict.report, verdict.td, verdict.identity
    os_hash = identity.os_image_hash if identity else None
    keyset = report.keyset
    return GatewayChain(
        checks=verdict.checks,
        nonce=verdict.nonce,
        tcb_status=verdict.tcb_status,
        advisory_ids=verdict.advisory_ids,
        mrtd=td.mrtd.hex() if td else None,
        rtmrs=(
            (td.rtmrs[0].hex(), td.rtmrs[1].hex(), td.rtmrs[2].hex(), td.rtmrs[3].hex())
            if td
            else (None, None, None, None)
        ),
        compose_hash=identity.compose_hash if identity else None,
        app_id=identity.app_id if identity else None,
        os_image_hash=os_hash,
        os_image_name=(os_image_names or {}).get(os_hash or ""),
        kms_root=verdict.kms_root,
        custody=tuple((c.role, c.purpose) for c in report.custody),
        keyset_digest=verdict.keyset_digest or report.workload_keyset_digest,
        keyset_not_after=datetime.fromtimestamp(keyset.not_after, tz=UTC),
        receipt_keys=tuple(k.key_id for k in keyset.receipt_keys),
        source_commit=report.source_commit,
        repo_url=report.repo_url,
    )


def chain_from_result(
    result: VerificationResult, *, os_image_names: Mapping[str, str] | None = None
) -> GatewayChain:
    """The chain behind an ACI verdict (what its ``attestation`` and ``aci`` objects kept)."""
    att, aci = result.attestation, result.aci or AciSummary()
    os_hash = aci.os_image_hash or (att.os_image_hash if att else None)
    return GatewayChain(
        checks=result.checks,
        nonce=att.nonce if att else None,
        tcb_status=att.tcb_status if att else None,
        advisory_ids=att.advisory_ids if att else (),
        mrtd=att.mrtd if att else None,
        rtmrs=(att.rtmr0, att.rtmr1, att.rtmr2, att.rtmr3) if att else (None, None, None, None),
        compose_hash=aci.compose_hash or (att.compose_hash if att else None),
        app_id=aci.app_id or (att.app_id if att else None),
        os_image_hash=os_hash,
        os_image_name=(os_image_names or {}).get(os_hash or ""),
        kms_root=aci.kms_root,
        keyset_digest=aci.keyset_digest,
        keyset_not_after=att.valid_until if att else None,
        receipt_keys=(result.signer,) if result.signer else (),
        source_commit=aci.source_commit,
    )


def render_gateway_chain(chain: GatewayChain) -> str:
    """A tree from the hardware root down to the receipt keys, each line with its check mark."""

    def mark(check: Check) -> str:
        return _MARK[_outcome(chain.checks, check.value)]

    # a gateway attested on its own has no receipt yet: its keys stand with the keyset
    signer = Check.SIGNER_ATTESTED if Check.SIGNER_ATTESTED in chain.checks else Check.KEYSET
    adv = _p(", ".join(chain.advisory_ids)) or "none"
    image = _short(chain.os_image_hash, 16)
    if chain.os_image_name:
        image += f" ({_p(chain.os_image_name)})"
    expiry = chain.keyset_not_after.isoformat(timespec="seconds") if chain.keyset_not_after else "-"
    lines = [
        f"{mark(Check.QUOTE)} Intel TDX quote (DCAP): the ACI gateway"
        f"   tcb={_field(chain.tcb_status)}  advisories: {adv}",
        f"│  {mark(Check.TCB)} TCB status accepted by policy",
        f"│  mrtd  {_short(chain.mrtd)}",
        f"│  rtmr0 {_short(chain.rtmrs[0])}  rtmr1 {_short(chain.rtmrs[1])}",
        f"│  rtmr2 {_short(chain.rtmrs[2])}  rtmr3 {_short(chain.rtmrs[3])}",
        f"├─ {mark(Check.EVENT_LOG)} event log replays to RTMR0-3",
        f"│  ├─ {mark(Check.COMPOSE)} compose hash {_short(chain.compose_hash)}",
        f"│  ├─ app id {_field(chain.app_id)}",
        f"│  ├─ {mark(Check.MEASUREMENTS)} OS image {image}",
        f"│  └─ source commit {_field(chain.source_commit)}"
        + (f"  ({_p(chain.repo_url)})" if chain.repo_url else ""),
        f"├─ {mark(Check.KEY_CUSTODY)} dstack KMS custody: root {_short(chain.kms_root, 20)}",
    ]
    for role, purpose in chain.custody:
        lines.append(f"│  · {_p(role)} ({_p(purpose)})")
    lines += [
        f"├─ {mark(Check.REPORT_DATA)} report_data binds keyset {_short(chain.keyset_digest, 30)}",
        f"│  ├─ {mark(Check.NONCE)} fresh nonce {_short(chain.nonce, 16)}",
        f"│  └─ {mark(Check.KEYSET)} keyset valid until {_p(expiry)}",
        f"└─ {mark(signer)} receipt keys: " + (", ".join(_p(k) for k in chain.receipt_keys) or "-"),
    ]
    return "\n".join(lines)


def render_upstream(upstream: UpstreamSummary | None, *, served_at: int | None = None) -> str:
    """The upstream the gateway says it verified, with its claims (the gateway's assertion)."""
    if upstream is None:
        return "upstream    -"
    claims = upstream.claims or {}
    lines = [
        f"upstream    {_field(upstream.provider)} serving {_field(upstream.model_id)}",
        f"            gateway's check: {_field(upstream.result)}"
        f" (required: {_field(upstream.required)})  session {_short(upstream.session_id, 16)}",
    ]
    if served_at is not None:
        when = datetime.fromtimestamp(served_at, tz=UTC).isoformat(timespec="seconds")
        lines.append(f"served at   {_p(when)}")
    if claims:
        lines.append("claims      " + ", ".join(_claim(k, v) for k, v in sorted(claims.items())))
    return "\n".join(lines)


def _claim(name: str, value: Any) -> str:
    if isinstance(value, Mapping):
        status = value.get("status")
        source = value.get("source")
        detail = "/".join(str(x) for x in (status, source) if x is not None)
        return f"{_p(name)}={_p(detail)}" if detail else _p(name)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f"{_p(name)}=[…]"
    return f"{_p(name)}={_p(value)}"


_STATUS = {"verified": "VERIFIED", "failed": "FAILED", "unverifiable": "UNVERIFIABLE"}


def render_verdict(
    result: VerificationResult,
    *,
    trust_chain: bool = False,
    os_image_names: Mapping[str, str] | None = None,
) -> str:
    """A verdict of either protocol: legacy ones as :func:`~.display.render_result` shows them;
    ACI ones with the protocol, who signed, the upstream and the gateway's chain."""
    if result.protocol != "aci":
        return render_result(result, trust_chain=trust_chain)
    head = _STATUS[result.status.value]
    if result.reasons:
        head += "  (" + ", ".join(_p(r.value) for r in result.reasons) + ")"
    aci = result.aci or AciSummary()
    lines = [
        f"verdict     {head}",
        f"protocol    aci (signed by the {_field(result.signed_by)})",
        f"chat id     {_field(result.chat_id)}",
        f"model       {_field(result.model)}",
        f"receipt     {_field(result.receipt_id)} (server receipt {_field(aci.receipt_id)})",
        render_upstream(aci.upstream, served_at=aci.served_at),
    ]
    if result.cached:
        lines.append("cached      yes: this verdict was recorded earlier, not re-verified now")
    if result.detail:
        lines.append(f"detail      {_p(result.detail)}")
    lines.append("checks")
    lines.append(render_aci_checks(result.checks))
    if trust_chain:
        lines.append("trust chain")
        lines.append(render_gateway_chain(chain_from_result(result, os_image_names=os_image_names)))
    return "\n".join(lines)
