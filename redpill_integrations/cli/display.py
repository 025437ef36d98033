"""Human-readable renderings of verdicts and trust chains (used by the CLI and the demo).

Pure functions from results to text; nothing here does I/O or reads secrets.

Every string that reaches the terminal goes through :func:`printable` first. Chat ids, models,
details, attestation fields and receipt rows come from the server or from a receipt file, and a
raw ANSI escape or carriage return in one of them could rewrite the verdict line a human reads.
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

__all__ = [
    "printable",
    "render_checks",
    "render_receipt_rows",
    "render_result",
    "render_trust_chain",
]

_MARK = {CheckOutcome.PASS: "✔", CheckOutcome.FAIL: "✘", CheckOutcome.NOT_CHECKED: "·"}
_STATUS = {
    Status.VERIFIED: "VERIFIED",
    Status.FAILED: "FAILED",
    Status.UNVERIFIABLE: "UNVERIFIABLE",
}
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# The trust chain, from the response up to the hardware, as (check, what a pass proves). Each line
# says no more than its check proves: a valid signature only shows that *some* key signed (binding
# that key to the attestation is the next line), and the request hash in the signed text is the one
# the gateway reported to the signing proxy, so a match shows the gateway reported our bytes
# faithfully, not that the TEE saw them.
_CHAIN: tuple[tuple[Check, str], ...] = (
    (Check.REQUEST_HASH, "request hash reported by the gateway matches the bytes we sent"),
    (Check.RESPONSE_HASH, "response bytes we received are the ones signed"),
    (Check.SIGNATURE, "signature is valid: some key signed the text"),
    (Check.SIGNER_ATTESTED, "that signing key is the one the attestation names"),
    (Check.NONCE, "attestation is fresh (our nonce echoed)"),
    (Check.REPORT_DATA, "TDX report_data binds signing key + nonce"),
    (Check.QUOTE, "TDX quote verifies under the Intel DCAP chain"),
    (Check.TCB, "platform TCB status accepted by policy"),
    (Check.EVENT_LOG, "event log replays to the quote's RTMRs"),
    (Check.COMPOSE, "app compose hash matches the measured event"),
    (Check.MEASUREMENTS, "code pinned (MRTD/RTMR1/RTMR2) and within policy allowlists"),
    (Check.GPU, "NVIDIA GPU evidence verified via NRAS tokens"),
)
_KNOWN = frozenset(check.value for check, _ in _CHAIN)


def printable(text: object, *, multiline: bool = False) -> str:
    """``str(text)`` with every non-printable character shown escaped, never emitted raw.

    Non-printable means what :meth:`str.isprintable` says: C0 and C1 controls (ESC, CR, BEL, ...),
    format characters such as the bidi overrides (U+202E) and zero-width marks, separators other
    than the ASCII space, unassigned and private-use code points. They are shown as ``\\n``,
    ``\\r``, ``\\t``, ``\\xHH``, ``\\uHHHH`` or ``\\UHHHHHHHH``. With ``multiline=True`` (for an
    answer's text) line feeds and tabs are kept; a carriage return is still escaped.
    """
    s = str(text)
    if s.isprintable():
        return s
    keep = "\n\t" if multiline else ""
    return "".join(ch if ch.isprintable() or ch in keep else _escape(ch) for ch in s)


def _escape(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _outcome(checks: Mapping[str, CheckOutcome], name: str) -> CheckOutcome:
    return CheckOutcome(checks.get(name, CheckOutcome.NOT_CHECKED))


def render_checks(checks: Mapping[str, CheckOutcome], *, indent: str = "  ") -> str:
    """One line per check of the chain (missing ones as not checked), then any check the chain
    does not name, so no outcome is ever hidden."""
    rows = list(_CHAIN) + [(name, "") for name in sorted(checks) if name not in _KNOWN]
    lines = []
    for check, meaning in rows:
        mark = _MARK[_outcome(checks, str(check))]
        lines.append(f"{indent}{mark} {printable(check):<16} {meaning}".rstrip())
    return "\n".join(lines)


def _short(value: str | None, keep: int = 16) -> str:
    if not value:
        return "-"
    return printable(value if len(value) <= keep + 2 else f"{value[:keep]}…")


def _field(value: object) -> str:
    return printable(value) if value else "-"


def render_trust_chain(
    summary: AttestationSummary | None, checks: Mapping[str, CheckOutcome]
) -> str:
    """A tree from the hardware root down to the signing key."""

    def mark(check: Check) -> str:
        return _MARK[_outcome(checks, check.value)]

    if summary is None:
        return "attestation: not available\n" + render_checks(checks)
    adv = printable(", ".join(summary.advisory_ids)) or "none"
    gpu = f"{summary.gpu_count} GPU(s)" if summary.gpu_count else "no GPU evidence"
    lines = [
        f"{mark(Check.QUOTE)} Intel TDX quote (DCAP)            tcb={_field(summary.tcb_status)}"
        f"  advisories: {adv}",
        f"│  {mark(Check.TCB)} TCB status accepted by policy",
        f"│  mrtd  {_short(summary.mrtd, 24)}",
        f"│  rtmr0 {_short(summary.rtmr0, 24)}  rtmr1 {_short(summary.rtmr1, 24)}",
        f"│  rtmr2 {_short(summary.rtmr2, 24)}  rtmr3 {_short(summary.rtmr3, 24)}",
        f"├─ {mark(Check.EVENT_LOG)} event log replays to RTMR0-3",
        f"│  └─ {mark(Check.COMPOSE)} compose hash {_short(summary.compose_hash, 24)}"
        f"  app id {_short(summary.app_id, 20)}",
        f"├─ {mark(Check.MEASUREMENTS)} code pinned (MRTD/RTMR1/RTMR2), policy allowlists",
        f"├─ {mark(Check.REPORT_DATA)} report_data binds signer + nonce"
        f"  ({_field(summary.signing_algo)} {_short(summary.signing_address, 20)})",
        f"│  └─ {mark(Check.NONCE)} fresh nonce {_short(summary.nonce, 16)}",
        f"└─ {mark(Check.GPU)} NVIDIA NRAS: {gpu}",
    ]
    return "\n".join(lines)


def render_result(result: VerificationResult, *, trust_chain: bool = False) -> str:
    """The verdict, its evidence fields and its checks (and the trust chain if asked)."""
    head = _STATUS[result.status]
    if result.reasons:
        head += "  (" + ", ".join(printable(r.value) for r in result.reasons) + ")"
    lines = [
        f"verdict     {head}",
        f"chat id     {_field(result.chat_id)}",
        f"model       {_field(result.model)}",
        f"served by   {_field(result.served_model)}",
        f"signer      {_field(result.signer)} ({_field(result.signing_algo)})",
        f"hash mode   {_field(result.hash_mode)}",
        f"receipt     {_field(result.receipt_id)}",
    ]
    if result.code_identity:
        kind = result.code_identity.get("kind")
        matched = ", ".join(str(m) for m in result.code_identity.get("matched") or ()) or "nothing"
        lines.append(f"code        {_field(kind)} (matched: {printable(matched)})")
    if result.assumptions:
        lines.append(f"assumes     {printable(', '.join(result.assumptions))}")
    if result.cached:
        lines.append("cached      yes: this verdict was recorded earlier, not re-verified now")
    if result.detail:
        lines.append(f"detail      {printable(result.detail)}")
    lines.append("checks")
    lines.append(render_checks(result.checks))
    if trust_chain:
        lines.append("trust chain")
        lines.append(render_trust_chain(result.attestation, result.checks))
    return "\n".join(lines)


def render_receipt_rows(rows: Iterable[Mapping[str, str | None]]) -> str:
    """A fixed-width table of receipts: id, time, status, model, chat id."""
    cols = ("receipt_id", "created_at", "status", "model", "chat_id")
    data = [[_field(row.get(c)) for c in cols] for row in rows]
    if not data:
        return "no receipts"
    widths = [max(len(c), *(len(r[i]) for r in data)) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
    out.extend(fmt.format(*r) for r in data)
    return "\n".join(out)
