"""What every CLI command shares: exit codes, the usage error, JSON printing and time parsing.

Imported by ``cli/__init__.py`` and ``cli/commands.py`` alike; it imports neither (no cycle).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from redpill_integrations.results import Status, VerificationResult

__all__ = ["EXIT_CODES", "UsageError", "exit_code_for", "parse_time", "print_json"]

EXIT_CODES = {
    "verified": 0,
    "failed": 1,
    "usage": 2,
    "unverifiable": 3,
    "error": 4,
    "internal": 5,
}
_STATUS_EXIT = {
    Status.VERIFIED: EXIT_CODES["verified"],
    Status.FAILED: EXIT_CODES["failed"],
    Status.UNVERIFIABLE: EXIT_CODES["unverifiable"],
}


class UsageError(Exception):
    """Bad arguments the parser could not catch; ``main`` prints one line and exits 2."""


def exit_code_for(result: VerificationResult) -> int:
    """The exit code for a verdict: 0 verified, 1 failed, 3 unverifiable."""
    return _STATUS_EXIT[result.status]


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON. ``json.dumps`` escapes control characters and (with its
    default ``ensure_ascii``) every non-ASCII character, so server-controlled strings cannot reach
    the terminal raw."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def parse_time(value: str) -> datetime:
    """An ISO-8601 time (a trailing ``Z`` allowed); :class:`UsageError` otherwise."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--at is not an ISO-8601 time: {value!r}") from exc
