"""An accumulator of check outcomes, reasons and one-line details, shared by the ACI checks."""

from __future__ import annotations

from collections.abc import Mapping

from redpill_integrations.results import CheckOutcome, Reason

__all__ = ["CheckLog"]


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
