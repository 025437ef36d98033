"""Parsing ACI documents at the boundary: typed errors with a reason, never a bare exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redpill_integrations.errors import DuplicateJSONKey, MalformedEvidence, UnsupportedProtocol
from redpill_integrations.verify.aci import parse_aci_report, parse_receipt, parse_session
from redpill_integrations.verify.aci.models import MAX_RECEIPT_BYTES
from tests.unit.verify.aci import kit

VECTORS = Path(__file__).parents[3] / "vectors" / "aci"


def test_live_report_keeps_raw_bytes_and_reads_every_field() -> None:
    raw = (VECTORS / "devproof_aci-tee.redpill.ai_2026-08-18.json").read_bytes()
    report = parse_aci_report(raw)
    assert report.raw == raw
    assert report.keyset.not_after == 1789300699
    assert [k.key_id for k in report.keyset.receipt_keys] == ["dstack-kms-receipt-ed25519-v1"]
    assert len(report.keyset.tls_spkis) == 3
    assert len(report.event_log) == 30
    assert report.vm_config["num_gpus"] == 0
    assert [c.role for c in report.custody] == ["receipt", "e2ee-secp256k1", "e2ee-x25519"]
    assert report.source_commit == "30296dd9a0dbaf06e520f2ed1be01eab75c3c287"
    assert report.serving == "aggregator"


@pytest.mark.parametrize(
    "name",
    ["looprig_report_aci1_2026-06-28.json", "privateer_phala_report_oldshape_2026-07-31.json"],
)
def test_generation_a_reports_are_refused_precisely(name: str) -> None:
    with pytest.raises(UnsupportedProtocol, match="generation A"):
        parse_aci_report((VECTORS / name).read_bytes())


def test_unknown_shape_and_version_are_unsupported() -> None:
    body = kit.report_dict()
    body["attestation"]["workload_keyset"]["not_after"] = "soon"
    with pytest.raises(UnsupportedProtocol, match="unknown ACI report shape"):
        parse_aci_report(json.dumps(body).encode())
    with pytest.raises(UnsupportedProtocol):
        parse_aci_report(json.dumps({**kit.report_dict(), "api_version": "aci/2"}).encode())
    snp = kit.report_dict()
    snp["attestation"]["tee_type"] = "sev_snp"
    with pytest.raises(UnsupportedProtocol, match="tee_type"):
        parse_aci_report(json.dumps(snp).encode())


def test_duplicate_keys_in_each_document() -> None:
    for parse in (parse_aci_report, parse_receipt, parse_session):
        with pytest.raises(DuplicateJSONKey) as info:
            parse(b'{"api_version":"aci/1","a":1,"a":2}')
        assert info.value.reason is not None and info.value.reason.value == "DUPLICATE_JSON_KEY"


def test_over_deep_and_oversize_documents_are_refused() -> None:
    deep = b'{"api_version":"aci/1","x":' + b"[" * 100 + b"]" * 100 + b"}"
    with pytest.raises(MalformedEvidence, match="deeper"):
        parse_receipt(deep)
    big = b'{"api_version":"aci/1","x":"' + b"a" * MAX_RECEIPT_BYTES + b'"}'
    with pytest.raises(MalformedEvidence, match="larger"):
        parse_receipt(big)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("served_at", "1750000000"),
        ("served_at", -1),
        ("signature", "zz"),
        ("signature", "00" * 63),
        ("event_log", {}),
        ("receipt_id", 7),
    ],
)
def test_wrong_types_in_a_receipt(field: str, value: object) -> None:
    doc = {**kit.receipt_dict(), field: value}
    with pytest.raises(MalformedEvidence):
        parse_receipt(json.dumps(doc).encode())


def test_generation_a_receipt_is_unsupported() -> None:
    doc = {**kit.receipt_dict(), "signature": {"algo": "ed25519", "key_id": "k", "value": "00"}}
    with pytest.raises(UnsupportedProtocol):
        parse_receipt(json.dumps(doc).encode())


def test_a_listing_entry_is_not_a_session_record() -> None:
    listing = json.loads(
        (VECTORS / "devproof_sessions_listing_excerpt_2026-08-18.derived.json").read_text()
    )
    with pytest.raises(MalformedEvidence, match="listing entry"):
        parse_session(json.dumps(listing["sessions"][0]).encode())


def test_non_bytes_input_is_a_typed_error() -> None:
    with pytest.raises(MalformedEvidence):
        parse_receipt("{}")  # type: ignore[arg-type]
