"""Source provenance counts only when the measured compose pins the claimed commit: the live
report (corroborated), edited copies of it (commit differs, field absent, compose edited), the
compose parser's refusals, and ``require_source_provenance`` with its exact reason."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason, Status
from redpill_integrations.verify.aci import parse_aci_report, verify_gateway
from redpill_integrations.verify.aci.identity import GatewayVerdict
from redpill_integrations.verify.aci.provenance import corroborated_commit, pinned_commit
from tests.unit.verify.aci.test_judge import judge

LIVE = Path(__file__).parents[3] / "vectors" / "aci" / "devproof_aci-tee.redpill.ai_2026-08-18.json"
LIVE_AT = datetime(2026, 8, 18, 12, tzinfo=UTC)
COMMIT = "30296dd9a0dbaf06e520f2ed1be01eab75c3c287"
OTHER = "1a044e96" + "0" * 32
# what the live report fails without its (unpublished) nonce and collateral, whatever else
BASE = (Reason.REPORT_DATA_MISMATCH, Reason.NONCE_MISMATCH, Reason.DEPENDENCY_UNAVAILABLE)


def _live(edit: Any = None) -> bytes:
    data = json.loads(LIVE.read_bytes())
    if edit is not None:
        data = copy.deepcopy(data)
        edit(data["attestation"])
    return json.dumps(data).encode()


def _gateway(body: bytes, *, require: bool = False) -> GatewayVerdict:
    return verify_gateway(
        parse_aci_report(body),
        nonce="00" * 32,
        collateral_json=None,
        policy=VerificationPolicy(require_source_provenance=require),
        trust=TrustAnchors.production(),
        now=LIVE_AT,
    )


def _set_commit(value: str) -> Any:
    def edit(att: dict[str, Any]) -> None:
        att["source_provenance"]["repo_commit"] = value

    return edit


def _drop_provenance(att: dict[str, Any]) -> None:
    del att["source_provenance"]


def _unpin_compose(att: dict[str, Any]) -> None:
    evidence = att["evidence"]
    evidence["app_compose"] = evidence["app_compose"].replace(
        f"PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}", "PRIVATE_AI_GATEWAY_REPO_COMMIT_UNUSED=x"
    )


@pytest.mark.parametrize("require", [False, True], ids=["default", "required"])
def test_the_live_report_commit_is_corroborated_by_its_measured_compose(require: bool) -> None:
    verdict = _gateway(_live(), require=require)
    assert verdict.source_commit == COMMIT
    assert verdict.code_identity is not None
    assert verdict.code_identity["matched"] == ["kms_root", "app_id", "os_image", "source_commit"]
    assert verdict.checks["measurements"] is CheckOutcome.PASS
    assert verdict.reasons == BASE


@pytest.mark.parametrize(
    "edit", [_set_commit(OTHER), _drop_provenance], ids=["commit-differs", "field-absent"]
)
def test_an_uncorroborated_commit_is_dropped_and_fails_only_when_required(edit: Any) -> None:
    lax = _gateway(_live(edit))
    assert lax.source_commit is None
    assert lax.code_identity is not None
    assert lax.code_identity["matched"] == ["kms_root", "app_id", "os_image"]
    assert (lax.checks["measurements"], lax.reasons) == (CheckOutcome.PASS, BASE)

    strict = _gateway(_live(edit), require=True)
    assert strict.source_commit is None
    assert strict.checks["measurements"] is CheckOutcome.FAIL
    assert strict.reasons == (*BASE, Reason.PROVENANCE_UNCORROBORATED)
    assert strict.code_identity is not None and strict.code_identity["kind"] == "unpinned"


def test_a_compose_edited_to_drop_the_pin_is_no_longer_the_measured_one() -> None:
    edited = _live(_unpin_compose)
    assert pinned_commit(json.loads(edited)["attestation"]["evidence"]["app_compose"]) is None
    verdict = _gateway(edited, require=True)
    assert verdict.source_commit is None
    assert verdict.checks["compose"] is CheckOutcome.FAIL
    # the compose mismatch already fails the verdict; provenance adds nothing on unmeasured text
    assert verdict.reasons == (*BASE, Reason.COMPOSE_MISMATCH)


def test_a_judged_report_whose_measured_compose_pins_no_commit() -> None:
    # the kit's gateway claims the live commit, but its (verifying) compose pins none
    lax = judge(policy=VerificationPolicy())
    assert (lax.status, lax.reasons) == (Status.VERIFIED, ())
    assert lax.aci is not None and lax.aci.source_commit is None
    strict = judge(policy=VerificationPolicy(require_source_provenance=True))
    assert (strict.status, strict.reasons) == (Status.FAILED, (Reason.PROVENANCE_UNCORROBORATED,))
    assert strict.checks["measurements"] is CheckOutcome.FAIL


def _compose(text: str, **extra: Any) -> str:
    return json.dumps({"docker_compose_file": text, **extra})


@pytest.mark.parametrize(
    ("compose", "expected"),
    [
        (_compose(f"    environment:\n      - PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}\n"), COMMIT),
        (_compose(f"    environment:\n      PRIVATE_AI_GATEWAY_REPO_COMMIT: '{COMMIT}'\n"), COMMIT),
        (_compose(f"  - PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT.upper()}\n"), COMMIT),
        # two different literal pins: which one the launcher used is not decided by the text
        (
            _compose(
                f"- PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}\n"
                f"- PRIVATE_AI_GATEWAY_REPO_COMMIT={OTHER}\n"
            ),
            None,
        ),
        (_compose("  - PRIVATE_AI_GATEWAY_REPO_COMMIT=${COMMIT_SHA}\n"), None),
        (_compose(f"  # - PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}\n"), None),
        (_compose(f"  - PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT[:12]}\n"), None),
        (
            _compose(
                f"  - PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}\n",
                allowed_envs=["PRIVATE_AI_GATEWAY_REPO_COMMIT"],
            ),
            None,
        ),
        (f"PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}", None),  # not the app-compose JSON
        (json.dumps({"docker_compose_file": 1}), None),
        ('{"docker_compose_file":"a","docker_compose_file":"b"}', None),
    ],
    ids=[
        "list",
        "mapping-quoted",
        "upper-case",
        "two-pins",
        "interpolated",
        "commented",
        "short",
        "operator-settable",
        "not-json",
        "not-a-string",
        "duplicate-key",
    ],
)
def test_the_pin_is_one_literal_commit_of_the_measured_compose(
    compose: str, expected: str | None
) -> None:
    assert pinned_commit(compose) == expected


def test_corroboration_needs_both_sides() -> None:
    compose = _compose(f"- PRIVATE_AI_GATEWAY_REPO_COMMIT={COMMIT}\n")
    assert corroborated_commit(compose, COMMIT) == COMMIT
    assert corroborated_commit(compose, OTHER) is None
    assert corroborated_commit(compose, None) is None
    assert corroborated_commit(None, COMMIT) is None
