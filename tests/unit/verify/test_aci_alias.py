"""An ACI gateway's legacy ``/v1/attestation/report`` alias never passes for a model attestation.

The live gateway answers the alias for every model name (including non-TEE models and names that
do not exist) with its own quote over ``address ‖ nonce``: it passes every check a pre-ACI client
makes except that it binds no model. It must be refused by its shape, with its own reason, not by
accident.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations.errors import AciAliasReport
from redpill_integrations.results import Reason
from redpill_integrations.verify import parse_report

VECTORS = Path(__file__).parents[2] / "vectors" / "aci"
LIVE = VECTORS / "devproof_aci-tee.redpill.ai_2026-08-18.json"


def live_alias(nonce: str) -> dict[str, Any]:
    """The live generation-B report dressed as the legacy alias serves it (the alias adds the
    flat fields beside the ACI ones; see docs/protocol-aci.md, legacy aliases)."""
    report = json.loads(LIVE.read_text(encoding="utf-8"))
    evidence = report["attestation"]["evidence"]
    flat = {
        "signing_address": "0x79a5061efe5a46b0d1f33b11cf1c5adbedae6b79",
        "signing_algo": "ecdsa",
        "intel_quote": evidence["quote"],
        "nvidia_payload": json.dumps({"nonce": nonce, "evidence_list": [], "arch": "HOPPER"}),
    }
    report.update(flat)
    report["all_attestations"] = [dict(report)]
    return report


@pytest.mark.parametrize(
    "strip",
    [(), ("api_version",), ("api_version", "workload_keyset_digest")],
    ids=["as-served", "without-api-version", "only-the-keyset-left"],
)
def test_the_live_alias_shape_is_refused_by_the_parser(strip: tuple[str, ...]) -> None:
    report = live_alias(secrets.token_hex(32))
    for key in strip:
        report.pop(key)
    with pytest.raises(AciAliasReport) as info:
        parse_report(json.dumps(report).encode())
    assert info.value.reason is Reason.ACI_ALIAS_REPORT


def test_a_flat_report_without_aci_fields_still_parses() -> None:
    report = live_alias(secrets.token_hex(32))
    for key in ("api_version", "workload_keyset_digest", "attestation", "service_capabilities"):
        report.pop(key, None)
    report["all_attestations"] = []
    parsed = parse_report(json.dumps(report).encode())
    assert parsed.shape == "flat"
    assert parsed.nodes[0].signing_address == "79a5061efe5a46b0d1f33b11cf1c5adbedae6b79"
