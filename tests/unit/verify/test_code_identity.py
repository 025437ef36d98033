"""``judge_code``: the policy allowlists, then whether MRTD/RTMR1/RTMR2 pin the code (V2)."""

from __future__ import annotations

import pytest

from redpill_integrations.errors import UNPINNED_CODE
from redpill_integrations.policy import OsImage, TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome
from redpill_integrations.verify.code_identity import judge_code
from redpill_integrations.verify.eventlog import AppIdentity
from redpill_integrations.verify.tdx import TdFields

MRTD, R0, R1, R2 = (bytes([n]) * 48 for n in (1, 2, 3, 4))
TD = TdFields(
    mrtd=MRTD,
    mr_config_id=bytes(48),
    rtmrs=(R0, R1, R2, bytes(48)),
    report_data=bytes(64),
    td_attributes=bytes(8),
)
IMAGE = "ab" * 32
IDENT = AppIdentity(compose_hash="cd" * 32, app_id="ef" * 20, os_image_hash=IMAGE, instance_id=None)
GENUINE = OsImage(name="genuine", mrtd=MRTD.hex(), rtmr1=R1.hex(), rtmr2=R2.hex())
OTHER_KERNEL = OsImage(name="genuine", mrtd=MRTD.hex(), rtmr1="99" * 48, rtmr2=R2.hex())
HASH_ONLY = OsImage(name="hash only")
PINS = {
    "allowed_mrtds": frozenset({MRTD.hex()}),
    "allowed_rtmr1": frozenset({R1.hex()}),
    "allowed_rtmr2": frozenset({R2.hex()}),
}


def trust(image: OsImage | None) -> TrustAnchors:
    return TrustAnchors(os_images={IMAGE: image} if image else {})


@pytest.mark.parametrize(
    ("image", "policy", "outcome", "identity"),
    [
        (GENUINE, {}, "pass", {"kind": "registry", "matched": ["os_image"], "os_image": "genuine"}),
        (OTHER_KERNEL, {}, "fail", {"kind": "unpinned", "matched": []}),
        (HASH_ONLY, {}, "fail", {"kind": "unpinned", "matched": []}),
        (None, {}, "fail", {"kind": "unpinned", "matched": []}),
        (None, PINS, "pass", {"kind": "pinned", "matched": ["mrtd", "rtmr1", "rtmr2"]}),
        (
            None,
            {"allowed_mrtds": PINS["allowed_mrtds"]},
            "fail",
            {"kind": "unpinned", "matched": ["mrtd"]},
        ),
        (None, {"require_code_pin": False}, "pass", {"kind": "unpinned", "matched": []}),
        (
            GENUINE,
            {"allowed_app_ids": frozenset({"ef" * 20})},
            "pass",
            {"kind": "registry", "matched": ["os_image", "app_id"], "os_image": "genuine"},
        ),
        (GENUINE, {"allowed_rtmr0": frozenset({"00" * 48})}, "fail", None),
    ],
)
def test_code_identity(
    image: OsImage | None, policy: dict[str, object], outcome: str, identity: object
) -> None:
    judged = judge_code(TD, IDENT, VerificationPolicy(**policy), trust(image))  # type: ignore[arg-type]
    assert (judged.outcome, judged.identity) == (CheckOutcome(outcome), identity)
    if identity is not None and outcome == "fail":
        assert judged.detail == UNPINNED_CODE


def test_an_unknown_td_is_not_checked() -> None:
    judged = judge_code(None, None, VerificationPolicy(), trust(GENUINE))
    assert (judged.outcome, judged.identity) == (CheckOutcome.NOT_CHECKED, None)
    pinned = judge_code(TD, None, VerificationPolicy(allowed_app_ids=frozenset({"ef" * 20})),
                        trust(GENUINE))  # fmt: skip
    assert pinned.outcome is CheckOutcome.NOT_CHECKED
