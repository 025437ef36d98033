"""Human-readable renderings of verdicts and trust chains (used by the CLI and the demo).

Pure functions from results to text; nothing here does I/O or reads secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redpill_integrations.results import (
    AttestationSummary,
    Check,
    CheckOutcome,
    Status,
    VerificationResult,
)

__all__ = ["render_checks", "render_receipt_rows", "render_result", "render_trust_chain"]

_MARK = {CheckOutcome.PASS: "✔", CheckOutcome.FAIL: "✘", CheckOutcome.NOT_CHECKED: "·"}
_STATUS = {
    Status.VERIFIED: "VERIFIED",
    Status.FAILED: "FAILED",
    Status.UNVERIFIABLE: "UNVERIFIABLE",
}

# The trust chain, from the response up to the hardware, as (check, what it proves).
_CHAIN: tuple[tuple[Check, str], ...] = (
    (Check.REQUEST_HASH, "request bytes we sent are the ones signed"),
    (Check.RESPONSE_HASH, "response bytes we received are the ones signed"),
    (Check.SIGNATURE, "signature is valid for the signing key"),
    (Check.SIGNER_ATTESTED, "signing key is the one the attestation names"),
    (Check.NONCE, "attestation is fresh (our nonce echoed)"),
    (Check.REPORT_DATA, "TDX report_data binds signing key + nonce"),
    (Check.QUOTE, "TDX quote verifies under the Intel DCAP chain"),
    (Check.TCB, "platform TCB status accepted by policy"),
    (Check.EVENT_LOG, "event log replays to the quote's RTMRs"),
    (Check.COMPOSE, "app compose hash matches the measured event"),
    (Check.MEASUREMENTS, "measurements within policy allowlists"),
    (Check.GPU, "NVIDIA GPU evidence verified via NRAS tokens"),
)


def _outcome(checks: Mapping[str, CheckOutcome], name: Check) -> CheckOutcome:
    return CheckOutcome(checks.get(name.value, CheckOutcome.NOT_CHECKED))


def render_checks(checks: Mapping[str, CheckOutcome], *, indent: str = "  ") -> str:
    lines = []
    for check, meaning in _CHAIN:
        outcome = _outcome(checks, check)
        lines.append(f"{indent}{_MARK[outcome]} {check.value:<16} {meaning}")
    return "\n".join(lines)


def _short(value: str | None, keep: int = 16) -> str:
    if not value:
        return "-"
    return value if len(value) <= keep + 2 else f"{value[:keep]}…"


def render_trust_chain(
    summary: AttestationSummary | None, checks: Mapping[str, CheckOutcome]
) -> str:
    """A tree from the hardware root down to the signing key."""

    def mark(check: Check) -> str:
        return _MARK[_outcome(checks, check)]

    if summary is None:
        return "attestation: not available\n" + render_checks(checks)
    adv = ", ".join(summary.advisory_ids) or "none"
    gpu = f"{summary.gpu_count} GPU(s)" if summary.gpu_count else "no GPU evidence"
    lines = [
        f"{mark(Check.QUOTE)} Intel TDX quote (DCAP)            tcb={summary.tcb_status or '-'}"
        f"  advisories: {adv}",
        f"│  {mark(Check.TCB)} TCB status accepted by policy",
        f"│  mrtd  {_short(summary.mrtd, 24)}",
        f"│  rtmr0 {_short(summary.rtmr0, 24)}  rtmr1 {_short(summary.rtmr1, 24)}",
        f"│  rtmr2 {_short(summary.rtmr2, 24)}  rtmr3 {_short(summary.rtmr3, 24)}",
        f"├─ {mark(Check.EVENT_LOG)} event log replays to RTMR0-3",
        f"│  └─ {mark(Check.COMPOSE)} compose hash {_short(summary.compose_hash, 24)}"
        f"  app id {_short(summary.app_id, 20)}",
        f"├─ {mark(Check.MEASUREMENTS)} measurements within policy allowlists",
        f"├─ {mark(Check.REPORT_DATA)} report_data binds signer + nonce"
        f"  ({summary.signing_algo} {_short(summary.signing_address, 20)})",
        f"│  └─ {mark(Check.NONCE)} fresh nonce {_short(summary.nonce, 16)}",
        f"└─ {mark(Check.GPU)} NVIDIA NRAS: {gpu}",
    ]
    return "\n".join(lines)


def render_result(result: VerificationResult, *, trust_chain: bool = False) -> str:
    head = f"{_STATUS[result.status]}"
    if result.reasons:
        head += "  (" + ", ".join(r.value for r in result.reasons) + ")"
    lines = [
        f"verdict     {head}",
        f"chat id     {result.chat_id or '-'}",
        f"model       {result.model or '-'}",
        f"signer      {result.signer or '-'} ({result.signing_algo or '-'})",
        f"hash mode   {result.hash_mode or '-'}",
        f"receipt     {result.receipt_id or '-'}",
    ]
    if result.cached:
        lines.append("cached      yes: this verdict was recorded earlier, not re-verified now")
    if result.detail:
        lines.append(f"detail      {result.detail}")
    lines.append("checks")
    lines.append(render_checks(result.checks))
    if trust_chain:
        lines.append("trust chain")
        lines.append(render_trust_chain(result.attestation, result.checks))
    return "\n".join(lines)


def render_receipt_rows(rows: Iterable[Mapping[str, str | None]]) -> str:
    """A fixed-width table of receipts: id, time, status, model, chat id."""
    cols = ("receipt_id", "created_at", "status", "model", "chat_id")
    data = [[str(row.get(c) or "-") for c in cols] for row in rows]
    if not data:
        return "no receipts"
    widths = [max(len(c), *(len(r[i]) for r in data)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
    out.extend(fmt.format(*r) for r in data)
    return "\n".join(out)
