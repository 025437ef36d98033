"""The emulator's own DCAP test PKI: a root CA, a PCK CA, a PCK leaf and a TCB signer.

Everything here is a *test* PKI: its root is not Intel's, so ``dcap_qvl.verify`` (Intel's root)
rejects every quote it signs; only ``dcap_qvl.verify_with_root_ca`` with :attr:`TestPki.root_der`
accepts them. Keys derive deterministically from a seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

__all__ = ["FMSPC", "PCE_SVN", "PCK_CPUSVN", "TestPki", "derive_ec_key", "raw_signature"]

FMSPC = bytes.fromhex("E1E1E1000000")
PCE_SVN = 13
PCK_CPUSVN = bytes([3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0])
PCEID = b"\x00\x00"
SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"


def derive_ec_key(seed: bytes, label: str, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    """A deterministic EC key for ``label`` (seeded test keys only)."""
    order = {
        "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "secp384r1": int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
            "581A0DB248B0A77AECEC196ACCC52973",
            16,
        ),
    }[curve.name]
    digest = hashlib.sha512(seed + b"|" + label.encode()).digest()
    scalar = int.from_bytes(digest, "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve)


def raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256/SHA-256 signature as raw r‖s (64 bytes), the form DCAP structures use."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --- a minimal DER encoder, enough for the SGX PCK extension --------------------------------


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out.extend(reversed(chunk))
    return _der(0x06, bytes(out))


def _int(value: int, tag: int = 0x02) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return _der(tag, body)


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def sgx_extension_value(fmspc: bytes = FMSPC) -> bytes:
    """DER of the Intel SGX extension (PPID, TCB, PCEID, FMSPC, SGX type)."""
    base = SGX_EXTENSION_OID
    tcb = [_seq(_oid(f"{base}.2.{i + 1}"), _int(PCK_CPUSVN[i])) for i in range(16)]
    tcb.append(_seq(_oid(f"{base}.2.17"), _int(PCE_SVN)))
    tcb.append(_seq(_oid(f"{base}.2.18"), _der(0x04, PCK_CPUSVN)))
    return _seq(
        _seq(_oid(f"{base}.1"), _der(0x04, hashlib.sha256(fmspc).digest()[:16])),
        _seq(_oid(f"{base}.2"), _seq(*tcb)),
        _seq(_oid(f"{base}.3"), _der(0x04, PCEID)),
        _seq(_oid(f"{base}.4"), _der(0x04, fmspc)),
        _seq(_oid(f"{base}.5"), _int(0, tag=0x0A)),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Redpill Emulator (TEST PKI, NOT INTEL)"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        ]
    )


def _serial(seed: bytes, label: str) -> int:
    digest = hashlib.sha256(seed + b"|serial|" + label.encode()).digest()
    return int.from_bytes(digest[:16], "big") >> 1


@dataclasses.dataclass(frozen=True)
class TestPki:
    """Root CA → (PCK CA → PCK leaf, TCB signer), plus the two CRLs dcap-qvl requires."""

    __test__ = False  # not a pytest class

    root_key: ec.EllipticCurvePrivateKey
    root_cert: x509.Certificate
    pck_ca_key: ec.EllipticCurvePrivateKey
    pck_ca_cert: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    pck_cert: x509.Certificate
    tcb_key: ec.EllipticCurvePrivateKey
    tcb_cert: x509.Certificate
    root_crl_der: bytes
    pck_crl_der: bytes

    @classmethod
    def create(
        cls, seed: bytes, *, now: dt.datetime | None = None, revoke_pck: bool = False
    ) -> TestPki:
        now = now or dt.datetime.now(dt.UTC)
        start, end = now - dt.timedelta(days=2), now + dt.timedelta(days=3650)
        curve = ec.SECP256R1()
        root_key = derive_ec_key(seed, "root", curve)
        pck_ca_key = derive_ec_key(seed, "pck-ca", curve)
        pck_key = derive_ec_key(seed, "pck", curve)
        tcb_key = derive_ec_key(seed, "tcb", curve)
        root_name = _name("Redpill Emulator SGX Root CA")

        def build(
            subject: x509.Name,
            issuer: x509.Name,
            key: ec.EllipticCurvePrivateKey,
            signer: ec.EllipticCurvePrivateKey,
            label: str,
            ca: bool,
            extra: x509.UnrecognizedExtension | None = None,
        ) -> x509.Certificate:
            b = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer)
                .public_key(key.public_key())
                .serial_number(_serial(seed, label))
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if extra is not None:
                b = b.add_extension(extra, critical=False)
            return b.sign(signer, hashes.SHA256())

        root = build(root_name, root_name, root_key, root_key, "root", True)
        pck_ca = build(
            _name("Redpill Emulator SGX PCK Processor CA"),
            root.subject,
            pck_ca_key,
            root_key,
            "pck-ca",
            True,
        )
        ext = x509.UnrecognizedExtension(
            x509.ObjectIdentifier(SGX_EXTENSION_OID), sgx_extension_value()
        )
        pck = build(
            _name("Redpill Emulator SGX PCK Certificate"),
            pck_ca.subject,
            pck_key,
            pck_ca_key,
            "pck",
            False,
            ext,
        )
        tcb = build(
            _name("Redpill Emulator SGX TCB Signing"), root.subject, tcb_key, root_key, "tcb", False
        )

        def crl(
            issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, revoked: list[int]
        ) -> bytes:
            b = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(issuer.subject)
                .last_update(start)
                .next_update(end)
                .add_extension(x509.CRLNumber(1), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                    critical=False,
                )
            )
            for serial in revoked:
                b = b.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(start)
                    .build()
                )
            return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

        return cls(
            root_key=root_key,
            root_cert=root,
            pck_ca_key=pck_ca_key,
            pck_ca_cert=pck_ca,
            pck_key=pck_key,
            pck_cert=pck,
            tcb_key=tcb_key,
            tcb_cert=tcb,
            root_crl_der=crl(root, root_key, []),
            pck_crl_der=crl(pck_ca, pck_ca_key, [pck.serial_number] if revoke_pck else []),
        )

    @property
    def root_der(self) -> bytes:
        return self.root_cert.public_bytes(serialization.Encoding.DER)

    @staticmethod
    def pem(*certs: x509.Certificate) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)

    @property
    def pck_chain_pem(self) -> str:
        """PCK leaf first, then the PCK CA (then the root), as embedded in quotes."""
        return self.pem(self.pck_cert, self.pck_ca_cert, self.root_cert)

    @property
    def pck_crl_issuer_chain_pem(self) -> str:
        return self.pem(self.pck_ca_cert, self.root_cert)

    @property
    def tcb_chain_pem(self) -> str:
        return self.pem(self.tcb_cert, self.root_cert)
