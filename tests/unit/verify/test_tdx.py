"""TDX quotes: dcap-qvl verification on real quotes and collateral, FMSPC, report_data binding."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from redpill_integrations.errors import MalformedEvidence
from redpill_integrations.verify import parse_report, quote_fmspc, quote_pck_ca
from redpill_integrations.verify.tdx import (
    epoch_seconds,
    expected_report_data,
    parse_td_quote,
    verify_quote,
)
from tests.unit.verify._vectors import (
    CLOUD_NONCE,
    CLOUD_NOW,
    NEAR_NONCE,
    NEAR_NOW,
    cached,
    vector_json,
)

DCAP_NOW = datetime.fromtimestamp(1750377600, tz=UTC)
REPORT_DATA_OFFSET = 48 + 520


def dcap_sample() -> tuple[bytes, str]:
    return cached("dcapqvl_tdx_quote.bin"), cached("dcapqvl_tdx_quote_collateral.json").decode()


def near_quote() -> bytes:
    return parse_report(cached("teep_neardirect_attestation_report.json")).nodes[0].intel_quote


def near_collateral() -> str:
    return cached("teep_neardirect_collateral_v3.json").decode()


def test_dcap_sample_quote_is_up_to_date() -> None:
    quote, collateral = dcap_sample()
    result = verify_quote(quote, collateral, root_ca_der=None, now=DCAP_NOW)
    assert result.error is None
    assert result.status == "UpToDate" and result.advisory_ids == ()
    assert result.valid_until is not None and result.valid_until > DCAP_NOW


@pytest.mark.parametrize(
    "now", [datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)]
)
def test_dcap_sample_outside_collateral_validity_fails(now: datetime) -> None:
    quote, collateral = dcap_sample()
    result = verify_quote(quote, collateral, root_ca_der=None, now=now)
    assert result.status is None and result.error and not result.collateral_unusable


def test_flipped_report_data_breaks_the_quote_signature() -> None:
    quote, collateral = dcap_sample()
    flipped = bytearray(quote)
    flipped[REPORT_DATA_OFFSET] ^= 1
    result = verify_quote(bytes(flipped), collateral, root_ca_der=None, now=DCAP_NOW)
    assert result.status is None
    assert "ISV enclave report signature is invalid" in (result.error or "")


def test_near_direct_quote_is_up_to_date_with_recorded_collateral() -> None:
    quote = near_quote()
    assert quote_fmspc(quote) == "90c06f000000"
    assert quote_pck_ca(quote) == "platform"
    result = verify_quote(quote, near_collateral(), root_ca_der=None, now=NEAR_NOW)
    assert (result.status, result.advisory_ids, result.error) == ("UpToDate", (), None)


def test_near_cloud_model_quote_verifies_and_gateway_has_other_fmspc() -> None:
    report = parse_report(cached("teep_nearcloud_attestation_report.json"))
    model = verify_quote(
        report.nodes[0].intel_quote, near_collateral(), root_ca_der=None, now=CLOUD_NOW
    )
    assert model.status == "UpToDate"
    assert report.gateway is not None
    assert quote_fmspc(report.gateway.intel_quote) == "b0c06f000000"
    gateway = verify_quote(
        report.gateway.intel_quote, near_collateral(), root_ca_der=None, now=CLOUD_NOW
    )
    assert gateway.status is None and "mismatch" in (gateway.error or "").lower()


def test_a_foreign_root_ca_rejects_real_intel_quotes() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Not Intel")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    result = verify_quote(near_quote(), near_collateral(), root_ca_der=der, now=NEAR_NOW)
    assert result.status is None and result.error


@pytest.mark.parametrize("collateral", ["", "{}", "[]", '{"pck_crl_issuer_chain": 1}'])
def test_unloadable_collateral_is_flagged_not_blamed_on_the_quote(collateral: str) -> None:
    result = verify_quote(near_quote(), collateral, root_ca_der=None, now=NEAR_NOW)
    assert result.collateral_unusable and result.status is None


def test_td_fields_match_dcap_and_the_report_info() -> None:
    report = parse_report(cached("teep_neardirect_attestation_report.json"))
    node = report.nodes[0]
    td = parse_td_quote(node.intel_quote)
    tcb = (node.info or {})["tcb_info"]
    assert td.mrtd.hex() == tcb["mrtd"]
    assert [r.hex() for r in td.rtmrs] == [tcb[f"rtmr{i}"] for i in range(4)]
    assert td.report_data == node.intel_quote[REPORT_DATA_OFFSET : REPORT_DATA_OFFSET + 64]
    assert td.mr_config_id.hex().startswith("01" + tcb["compose_hash"])


def test_near_direct_tls_bound_report_data() -> None:
    node = parse_report(cached("teep_neardirect_attestation_report.json")).nodes[0]
    td = parse_td_quote(node.intel_quote)
    assert td.report_data[32:] == bytes.fromhex(NEAR_NONCE)
    assert td.report_data == expected_report_data(node, bytes.fromhex(NEAR_NONCE))
    # Without the TLS fingerprint the plain padded form would be expected: it does not match.
    plain = dataclasses.replace(node, tls_cert_fingerprint=None)
    assert td.report_data != expected_report_data(plain, bytes.fromhex(NEAR_NONCE))
    assert td.report_data != expected_report_data(node, bytes(32))


def test_near_cloud_gateway_and_model_report_data() -> None:
    report = parse_report(cached("teep_nearcloud_attestation_report.json"))
    assert report.gateway is not None
    for node in (report.gateway, *report.nodes):
        td = parse_td_quote(node.intel_quote)
        assert td.report_data == expected_report_data(node, bytes.fromhex(CLOUD_NONCE))
    raw = json.loads(cached("teep_nearcloud_attestation_report.json"))
    assert (
        parse_td_quote(report.gateway.intel_quote).report_data.hex()
        == (raw["gateway_attestation"]["report_data"])
    )


def test_plain_report_data_is_padded_address_then_nonce() -> None:
    node = parse_report(cached("teep_neardirect_attestation_report.json")).nodes[0]
    ecdsa = dataclasses.replace(
        node, signing_address="ab" * 20, signing_algo="ecdsa", tls_cert_fingerprint=None
    )
    nonce = bytes(range(32))
    assert expected_report_data(ecdsa, nonce) == bytes([0xAB] * 20) + bytes(12) + nonce
    with pytest.raises(MalformedEvidence):
        expected_report_data(ecdsa, b"short")


def test_vllm_proxy_sample_quote_parses() -> None:
    sample = vector_json("vllmproxy_sample_dstack_get_quote.json")
    td = parse_td_quote(bytes.fromhex(sample["quote"]))
    assert td.report_data == b"\x01" * 64  # not a binding test: the sample's data is a fill


@pytest.mark.parametrize("quote", [b"", b"\x04\x00", b"\x04\x00" + bytes(700), b"\x03" * 1000])
def test_unparseable_quotes_are_malformed_evidence(quote: bytes) -> None:
    for fn in (parse_td_quote, quote_fmspc, quote_pck_ca):
        with pytest.raises(MalformedEvidence):
            fn(quote)


def test_truncated_real_quote_is_malformed_or_invalid() -> None:
    quote = near_quote()
    # (the recorded quote ends in zero padding past its auth data: cuts there are harmless)
    for cut in (100, 632, 700, 1500, 3000):
        with pytest.raises(MalformedEvidence):
            quote_fmspc(quote[:cut])
        result = verify_quote(quote[:cut], near_collateral(), root_ca_der=None, now=NEAR_NOW)
        assert result.status is None and result.error


def test_naive_now_is_taken_as_utc() -> None:
    assert epoch_seconds(datetime(2025, 6, 20)) == 1750377600
