"""An accumulator of check outcomes, reasons and one-line details, shared by both protocols' checks,
and the judgement of a DCAP quote verification into the ``quote`` and ``tcb`` checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from redpill_integrations.results import CheckOutcome, Reason

if TYPE_CHECKING:
    from redpill_integrations.policy import VerificationPolicy
    from redpill_integrations.verify.tdx import QuoteVerification

__all__ = ["CheckLog", "judge_quote"]


class CheckLog:
    """Outcomes by check name, reasons in the order found, and short details (never secrets)."""

    def __init__(self) -> None:
        self.checks: dict[str, CheckOutcome] = {}
        self.reasons: list[Reason] = []
        self.details: list[str] = []

    def ok(self, name: str) -> None:
        # A check that already failed stays failed: several steps may feed one check.
        if self.checks.get(name) is not CheckOutcome.FAIL:
            self.checks[name] = CheckOutcome.PASS

    def fail(self, name: str, reason: Reason, detail: str) -> None:
        self.checks[name] = CheckOutcome.FAIL
        self.reasons.append(reason)
        self.details.append(f"{name}: {detail}")

    def skip(self, name: str, reason: Reason | None = None, detail: str | None = None) -> None:
        if self.checks.get(name) is not CheckOutcome.FAIL:
            self.checks[name] = CheckOutcome.NOT_CHECKED
        if reason is not None:
            self.reasons.append(reason)
        if detail:
            self.details.append(f"{name}: {detail}")

    def absorb(
        self, checks: Mapping[str, CheckOutcome], reasons: tuple[Reason, ...], detail: str | None
    ) -> None:
        """Take over another log's results (a cached gateway verdict, say)."""
        self.checks.update(checks)
        self.reasons.extend(reasons)
        if detail:
            self.details.append(detail)

    @property
    def detail(self) -> str | None:
        return "; ".join(self.details)[:2000] or None


def judge_quote(qv: QuoteVerification, policy: VerificationPolicy, log: CheckLog) -> None:
    """``quote`` and ``tcb`` from dcap-qvl's answer: unusable collateral leaves both unchecked
    (``DEPENDENCY_UNAVAILABLE``), a quote that does not verify fails ``quote``, and a TCB status
    outside the policy fails ``tcb``."""
    if qv.collateral_unusable:
        log.skip("quote", Reason.DEPENDENCY_UNAVAILABLE, qv.error)
        log.skip("tcb")
    elif qv.error is not None or qv.status is None:
        log.fail("quote", Reason.QUOTE_INVALID, f"dcap-qvl: {qv.error}")
        log.skip("tcb")
    else:
        log.ok("quote")
        if qv.status in policy.accepted_tcb_statuses:
            log.ok("tcb")
        else:
            log.fail(
                "tcb",
                Reason.TCB_STATUS_REJECTED,
                f"TCB status {qv.status} is not accepted by the policy",
            )
