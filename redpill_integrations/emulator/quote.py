"""TDX v4 quotes signed by the emulator's test PKI (layouts as dcap-qvl 0.7.0 parses them)."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from redpill_integrations.emulator.pki import PCE_SVN, TestPki, derive_ec_key, raw_signature

__all__ = ["QE_MRSIGNER", "TEE_TCB_SVN", "QuoteFactory", "TdMeasurements"]

QE_VENDOR_ID = bytes.fromhex("939A7233F79C4CA9940A0DB3957F0607")
TEE_TCB_SVN = bytes([3, 0, 0, 0] + [0] * 12)  # module version 0: no module-identity lookup
QE_MRSIGNER = hashlib.sha256(b"redpill-emulator-qe-signer").digest()
QE_ATTRIBUTES = bytes.fromhex("11000000000000000000000000000000")
QE_ISVSVN = 8
QE_ISVPRODID = 2
TD_ATTRIBUTES = bytes.fromhex("0000001000000000")  # SEPT_VE_DISABLE
TD_ATTRIBUTES_DEBUG = bytes.fromhex("0100001000000000")


@dataclasses.dataclass(frozen=True)
class TdMeasurements:
    """The measured values a TD report carries (each 48 bytes)."""

    mr_td: bytes
    mr_config_id: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]


class _QuoteSigner:
    """The QE's attestation key plus the (fixed) QE report certifying it."""

    def __init__(self, pki: TestPki, seed: bytes) -> None:
        self.att_key = derive_ec_key(seed, "attestation-key", ec.SECP256R1())
        pub = self.att_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        self.att_pub = pub
        qe_auth = hashlib.sha256(seed + b"|qe-auth").digest()
        report = bytearray(384)
        report[0:16] = bytes(16)
        report[48:64] = QE_ATTRIBUTES
        report[64:96] = hashlib.sha256(b"redpill-emulator-qe").digest()
        report[128:160] = QE_MRSIGNER
        report[256:258] = struct.pack("<H", QE_ISVPRODID)
        report[258:260] = struct.pack("<H", QE_ISVSVN)
        report[320:352] = hashlib.sha256(pub + qe_auth).digest()
        qe_report = bytes(report)
        chain = pki.pck_chain_pem.encode()
        inner = struct.pack("<HI", 5, len(chain)) + chain
        body = (
            qe_report
            + raw_signature(pki.pck_key, qe_report)
            + struct.pack("<H", len(qe_auth))
            + qe_auth
            + inner
        )
        self.cert_data = struct.pack("<HI", 6, len(body)) + body


class QuoteFactory:
    """Makes quotes for one PKI; each quote takes about a millisecond."""

    def __init__(self, pki: TestPki, seed: bytes) -> None:
        self._signer = _QuoteSigner(pki, seed)

    def build(
        self, measurements: TdMeasurements, report_data: bytes, *, debug: bool = False
    ) -> bytes:
        return build_quote(self._signer, measurements, report_data, debug=debug)


def build_quote(
    signer: _QuoteSigner, measurements: TdMeasurements, report_data: bytes, *, debug: bool = False
) -> bytes:
    """A TDX v4 quote over ``report_data`` (64 bytes)."""
    if len(report_data) != 64:
        raise ValueError("report_data must be 64 bytes")
    header = struct.pack("<HHIHH", 4, 2, 0x81, 0, PCE_SVN) + QE_VENDOR_ID + bytes(20)
    body = bytearray(584)
    body[0:16] = TEE_TCB_SVN
    body[16:64] = hashlib.sha384(b"redpill-emulator-mr-seam").digest()
    # mr_signer_seam (64:112) zero, as Intel's; seam_attributes (112:120) zero
    body[120:128] = TD_ATTRIBUTES_DEBUG if debug else TD_ATTRIBUTES
    body[128:136] = bytes.fromhex("e702060000000000")  # xfam
    body[136:184] = measurements.mr_td
    body[184:232] = measurements.mr_config_id
    for i, rtmr in enumerate(measurements.rtmrs):
        body[328 + 48 * i : 376 + 48 * i] = rtmr
    body[520:584] = report_data
    signed = header + bytes(body)
    auth = raw_signature(signer.att_key, signed) + signer.att_pub + signer.cert_data
    return signed + struct.pack("<I", len(auth)) + auth
