"""Source provenance, corroborated: the commit the measured compose pins (docs/protocol-aci.md §3).

A report's ``source_provenance`` is not bound into the quote: the gateway writes whatever it
read at start-up. It counts only when the measured ``app_compose`` (whose sha256 is the
``compose-hash`` event replayed into RTMR3) pins the same commit as a literal
``PRIVATE_AI_GATEWAY_REPO_COMMIT`` value: the launcher clones and builds that commit.

Pure: strings in, a commit or None out. The caller runs it only after the compose check passed.
"""

from __future__ import annotations

import re

from redpill_integrations.errors import EvidenceError
from redpill_integrations.verify.encoding import loads_strict

__all__ = ["PIN_VARIABLE", "corroborated_commit", "pinned_commit"]

#: the compose environment variable the gateway's launcher clones its source from
PIN_VARIABLE = "PRIVATE_AI_GATEWAY_REPO_COMMIT"

# One line of the compose file: a list item ``- NAME=value`` or a mapping ``NAME: value``, the
# value a literal 40-hex commit (an interpolated ``${…}`` is operator-supplied and never counts).
_PIN = re.compile(
    r"^[ \t]*(?:-[ \t]*)?[\"']?" + PIN_VARIABLE + r"[\"']?[ \t]*[=:][ \t]*"
    r"[\"']?([0-9a-fA-F]{40})[\"']?[ \t]*$",
    re.MULTILINE,
)


def pinned_commit(app_compose: str) -> str | None:
    """The one commit (lower-case hex) the compose's ``docker_compose_file`` pins, else None.

    None when the compose is not a JSON object with a string ``docker_compose_file``, when it
    pins no literal commit or two different ones, or when ``allowed_envs`` lets the operator set
    the variable at deploy time (then the measured text does not decide the value).
    """
    try:
        document = loads_strict(app_compose, what="app_compose", max_bytes=1 << 20)
    except EvidenceError:
        return None
    if not isinstance(document, dict):
        return None
    allowed = document.get("allowed_envs")
    if not isinstance(allowed, list | None) or PIN_VARIABLE in (allowed or ()):
        return None
    compose = document.get("docker_compose_file")
    if not isinstance(compose, str):
        return None
    found = {match.group(1).lower() for match in _PIN.finditer(compose)}
    return found.pop() if len(found) == 1 else None


def corroborated_commit(app_compose: str | None, claimed: str | None) -> str | None:
    """``claimed`` (the report's ``source_provenance.repo_commit``) when the measured compose
    pins exactly that commit; None when either is missing or they differ."""
    if app_compose is None or claimed is None:
        return None
    pinned = pinned_commit(app_compose)
    return pinned if pinned is not None and pinned == claimed.lower() else None
