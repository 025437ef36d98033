"""Which code a legacy TD runs: the policy allowlists, then the code identity.

Compose hash, app id and OS-image hash come from RTMR3 events the guest extends itself: they
identify the code only when MRTD, RTMR1 and RTMR2 (firmware, kernel, initrd and command line,
measured before the guest runs) are those of a known image. So the code is

* ``pinned`` when the policy pins all three (``allowed_mrtds``, ``allowed_rtmr1``,
  ``allowed_rtmr2``) and the quote matches them;
* ``registry`` when they equal the trust anchors' fully measured ``os_images`` entry for the
  measured ``os-image-hash``;
* ``unpinned`` otherwise, which fails ``measurements`` (``MEASUREMENT_NOT_ALLOWED``, with
  :data:`~redpill_integrations.errors.UNPINNED_CODE` saying how to pin) unless the policy opts out
  (``require_code_pin=False``).

``matched`` lists what matched: ``os_image`` and every allowlist the policy set. See
docs/code-identity.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redpill_integrations.errors import UNPINNED_CODE
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome
from redpill_integrations.verify.eventlog import AppIdentity
from redpill_integrations.verify.tdx import TdFields

__all__ = ["CODE_PINS", "CodeJudgement", "judge_code"]

#: The policy allowlists that, all three set, pin the code by themselves.
CODE_PINS = frozenset({"mrtd", "rtmr1", "rtmr2"})


@dataclasses.dataclass(frozen=True, slots=True)
class CodeJudgement:
    """The ``measurements`` outcome, its detail, and the ``code_identity`` (None: TD unknown)."""

    outcome: CheckOutcome
    detail: str | None = None
    identity: dict[str, Any] | None = None


def judge_code(
    td: TdFields | None,
    ident: AppIdentity | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
) -> CodeJudgement:
    """``td`` from the quote, ``ident`` from an event log that replayed (None when either is
    unknown: the check then stays ``not_checked``)."""
    values: dict[str, tuple[frozenset[str] | None, str | None, bool]] = {
        "compose_hash": (
            policy.allowed_compose_hashes,
            ident.compose_hash if ident else None,
            ident is not None,
        ),
        "app_id": (policy.allowed_app_ids, ident.app_id if ident else None, ident is not None),
        "os_image_hash": (
            policy.allowed_os_image_hashes,
            ident.os_image_hash if ident else None,
            ident is not None,
        ),
        "mrtd": (policy.allowed_mrtds, td.mrtd.hex() if td else None, td is not None),
    }
    for i, allowed in enumerate((policy.allowed_rtmr0, policy.allowed_rtmr1, policy.allowed_rtmr2)):
        values[f"rtmr{i}"] = (allowed, td.rtmrs[i].hex() if td else None, td is not None)
    pinned: list[str] = []
    for label, (allowed, value, known) in values.items():
        if allowed is None:
            continue
        if not known:
            detail = f"{label} unknown: an earlier check did not pass"
            return CodeJudgement(CheckOutcome.NOT_CHECKED, detail)
        if value is None or value not in allowed:
            detail = f"{label} {value} is not in the policy's allowlist"
            return CodeJudgement(CheckOutcome.FAIL, detail)
        pinned.append(label)
    if td is None or ident is None:
        detail = "the TD's measurements are unknown: nothing to pin"
        return CodeJudgement(CheckOutcome.NOT_CHECKED, detail)
    identity = _code_identity(td, ident, pinned, trust)
    if identity["kind"] == "unpinned" and policy.require_code_pin:
        return CodeJudgement(CheckOutcome.FAIL, UNPINNED_CODE, identity)
    return CodeJudgement(CheckOutcome.PASS, None, identity)


def _code_identity(
    td: TdFields, ident: AppIdentity, pinned: list[str], trust: TrustAnchors
) -> dict[str, Any]:
    if CODE_PINS <= set(pinned):
        return {"kind": "pinned", "matched": pinned}
    image = trust.os_images.get(ident.os_image_hash or "")
    if (
        image is not None
        and image.fully_measured
        and (image.mrtd, image.rtmr1, image.rtmr2)
        == (td.mrtd.hex(), td.rtmrs[1].hex(), td.rtmrs[2].hex())
    ):
        return {"kind": "registry", "matched": ["os_image", *pinned], "os_image": image.name}
    return {"kind": "unpinned", "matched": pinned}
