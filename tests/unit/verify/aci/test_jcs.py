"""Canonical JSON: the ACI subset of RFC 8785, against the Rust reference's vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rfc8785

from redpill_integrations.verify.aci import NotCanonical, jcs, jcs_sha256
from redpill_integrations.verify.encoding import loads_strict

VECTORS = Path(__file__).parents[3] / "vectors" / "aci"
JCS = json.loads((VECTORS / "looprig_jcs_vectors.json").read_text())["vectors"]
VALUE_VECTORS = [v for v in JCS if not v["wantErr"] and v["name"] != "utf16_key_sort_surrogate"]


@pytest.mark.parametrize("vector", VALUE_VECTORS, ids=lambda v: v["name"])
def test_reference_vectors_match_byte_for_byte(vector: dict) -> None:  # type: ignore[type-arg]
    out = jcs(vector["value"])
    assert out.hex() == vector["canonical_hex"]
    assert jcs_sha256(vector["value"]) == vector["sha256"]


def test_there_are_sixteen_value_vectors() -> None:
    assert len(VALUE_VECTORS) == 16


def test_floats_are_rejected_though_rfc8785_accepts_them() -> None:
    (vector,) = [v for v in JCS if v["name"] == "float_rejected"]
    assert rfc8785.dumps(vector["value"])  # the package would encode it
    with pytest.raises(NotCanonical):
        jcs(vector["value"])


def test_non_ascii_member_names_are_rejected() -> None:
    (vector,) = [v for v in JCS if v["name"] == "utf16_key_sort_surrogate"]
    assert rfc8785.dumps(vector["value"]).hex() == vector["canonical_hex"]  # UTF-16 order
    with pytest.raises(NotCanonical):
        jcs(vector["value"])


def test_integers_above_2_53_are_written_verbatim() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps({"not_after": 2**64 - 1})
    assert jcs({"not_after": 2**64 - 1, "a": "é"}) == (
        b'{"a":"\xc3\xa9","not_after":18446744073709551615}'
    )


def test_generation_a_keyset_with_u64_max_recomputes_its_digest() -> None:
    report = loads_strict((VECTORS / "looprig_report_aci1_2026-06-28.json").read_bytes(), what="r")
    keyset = report["attestation"]["workload_keyset"]
    assert keyset["keyset_epoch"]["not_after"] == 2**64 - 1
    assert jcs_sha256(keyset) == report["workload_keyset_digest"]


def test_spec_keyset_file_is_its_own_canonical_form() -> None:
    raw = (VECTORS / "pag_spec_keyset_53a5cd44.derived.json").read_bytes()
    assert jcs(json.loads(raw)) == raw
    assert hashlib.sha256(raw).hexdigest().startswith("53a5cd44")


def test_lone_surrogates_and_foreign_types_are_rejected() -> None:
    with pytest.raises(NotCanonical):
        jcs({"s": "\ud800"})
    with pytest.raises(NotCanonical):
        jcs({"s": b"bytes"})
