"""Re-verify a whole receipt store offline: what ``redpill receipts verify --all`` runs.

:func:`reverify_store` streams every row (:meth:`ReceiptStore.iter_checked`: a row that does not
load is counted, never skipped silently), re-runs :func:`~redpill_integrations.receipts.reverify`
on each with the caller's trust anchors and policy (``None``: the default policy, never a
receipt's own), and returns an :class:`AuditSummary`. ``progress(done, total)`` is called after
each receipt.
Fail closed: a row that does not load, or whose re-verification raises, is ``unreadable`` and
makes the audit not clean.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import IO

from redpill_integrations.errors import RedpillError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import reverify
from redpill_integrations.stores.base import ReceiptStore

__all__ = ["AuditSummary", "Changed", "ProgressBar", "reverify_store"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Changed:
    """A receipt whose offline verdict differs from the one recorded with it."""

    receipt_id: str
    was: str
    now: str
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AuditSummary:
    total: int
    #: offline verdicts by status
    statuses: dict[str, int]
    changed: tuple[Changed, ...]
    #: ``(receipt_id, message)`` of rows that could not be loaded or re-verified
    unreadable: tuple[tuple[str, str], ...]

    @property
    def clean(self) -> bool:
        """Every receipt loaded and re-verified to the verdict recorded with it."""
        return not self.changed and not self.unreadable

    def render(self) -> str:
        by_status = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        lines = [f"{self.total} receipts re-verified offline ({by_status or 'none'})"]
        lines += [
            f"  CHANGED {c.receipt_id}: {c.was} -> {c.now} {' '.join(c.reasons)}".rstrip()
            for c in self.changed
        ]
        lines += [f"  UNREADABLE {rid}: {msg}" for rid, msg in self.unreadable]
        lines.append(
            "all verdicts unchanged"
            if self.clean
            else f"{len(self.changed)} changed, {len(self.unreadable)} unreadable"
        )
        return "\n".join(lines)


def reverify_store(
    store: ReceiptStore,
    *,
    trust: TrustAnchors,
    policy: VerificationPolicy | None = None,
    at: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditSummary:
    """Re-verify every receipt in ``store`` offline (see the module docstring)."""
    total = len(store)
    statuses: Counter[str] = Counter()
    changed: list[Changed] = []
    unreadable: list[tuple[str, str]] = []
    done = 0
    for rid, item in store.iter_checked():
        if isinstance(item, RedpillError):
            unreadable.append((rid, str(item)))
        else:
            try:
                again = reverify(item, at=at, trust=trust, policy=policy)
            except RedpillError as exc:
                unreadable.append((rid, str(exc)))
            else:
                statuses[again.status.value] += 1
                was = item.result
                if (again.status, again.reasons) != (was.status, was.reasons):
                    changed.append(
                        Changed(
                            receipt_id=rid,
                            was=was.status.value,
                            now=again.status.value,
                            reasons=tuple(r.value for r in again.reasons),
                        )
                    )
        done += 1
        if progress is not None:
            progress(done, max(total, done))
    return AuditSummary(
        total=done, statuses=dict(statuses), changed=tuple(changed), unreadable=tuple(unreadable)
    )


class ProgressBar:
    """``[#####.....] 50/100`` on a terminal, redrawn in place; nothing when ``out`` is not a TTY
    (so logs and pipes stay clean)."""

    def __init__(self, out: IO[str], *, width: int = 30) -> None:
        self._out, self._width = out, width
        self._tty = bool(getattr(out, "isatty", lambda: False)())
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self._tty:
            return
        filled = self._width * done // total if total else self._width
        if filled == self._last and done != total:
            return
        self._last = filled
        bar = "#" * filled + "." * (self._width - filled)
        end = "\n" if done >= total else ""
        self._out.write(f"\r[{bar}] {done}/{total}{end}")
        self._out.flush()
