"""The test PKI and quotes, offline (no server): what dcap-qvl 0.7.0 accepts and rejects."""

from __future__ import annotations

import hashlib
import time

import dcap_qvl
import pytest

from redpill_integrations.emulator.collateral import build_collateral
from redpill_integrations.emulator.eventlog import CvmIdentity, replay_rtmrs
from redpill_integrations.emulator.pki import TestPki
from redpill_integrations.emulator.quote import QuoteFactory

SEED = hashlib.sha256(b"unit").digest()
PKI = TestPki.create(SEED)
QUOTES = QuoteFactory(PKI, SEED)
CVM = CvmIdentity.create(SEED, "redpill-emulator-unit")


def _verify(quote: bytes, pki: TestPki = PKI, status: str = "UpToDate") -> str:
    col = dcap_qvl.QuoteCollateralV3.from_json(
        build_collateral(pki, tcb_status=status).to_v3_json()
    )
    return str(dcap_qvl.verify_with_root_ca(quote, col, pki.root_der, int(time.time())).status)


@pytest.mark.parametrize(
    "status", ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "OutOfDate"]
)
def test_statuses_pass_through(status: str) -> None:
    assert _verify(QUOTES.build(CVM.measurements, bytes(64)), status=status) == status


def test_revoked_tcb_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="Revoked"):
        _verify(QUOTES.build(CVM.measurements, bytes(64)), status="Revoked")


def test_revoked_pck_certificate_is_rejected() -> None:
    pki = TestPki.create(SEED, revoke_pck=True)
    quote = QuoteFactory(pki, SEED).build(CVM.measurements, bytes(64))
    with pytest.raises(ValueError, match="CertRevoked"):
        _verify(quote, pki)


def test_flipped_report_data_and_debug_td_are_rejected() -> None:
    quote = bytearray(QUOTES.build(CVM.measurements, bytes(64)))
    quote[568] ^= 1
    with pytest.raises(ValueError, match="signature is invalid"):
        _verify(bytes(quote))
    with pytest.raises(ValueError, match="Debug mode"):
        _verify(QUOTES.build(CVM.measurements, bytes(64), debug=True))


def test_intel_root_rejects_emulator_quotes() -> None:
    quote = QUOTES.build(CVM.measurements, bytes(64))
    col = dcap_qvl.QuoteCollateralV3.from_json(build_collateral(PKI).to_v3_json())
    with pytest.raises(ValueError, match="Verification failed"):
        dcap_qvl.verify(quote, col, int(time.time()))


def test_quote_carries_measurements_and_report_data() -> None:
    rd = bytes(range(64))
    quote = QUOTES.build(CVM.measurements, rd)
    assert quote[568:632] == rd
    assert [quote[376 + 48 * i : 424 + 48 * i] for i in range(4)] == list(
        replay_rtmrs(list(CVM.event_log))
    )
    assert quote[184:232] == CVM.measurements.mr_td
    assert quote[232:280] == b"\x01" + bytes.fromhex(CVM.compose_hash) + bytes(15)


def test_pki_keys_are_deterministic_per_seed() -> None:
    def root_key(pki: TestPki) -> int:
        return pki.root_cert.public_key().public_numbers().x  # type: ignore[union-attr]

    assert root_key(TestPki.create(SEED)) == root_key(PKI)
    assert root_key(TestPki.create(b"other")) != root_key(PKI)
