"""Signed TCB info and QE identity for the test PKI, and the PCCS answers that carry them.

The signed JSON is compact with sorted keys: dcap-qvl's fetcher re-serialises the ``tcbInfo`` /
``enclaveIdentity`` value with serde_json, and that form is byte-identical to what we signed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any
from urllib.parse import quote as urlquote

from redpill_integrations.emulator.pki import FMSPC, PCE_SVN, PCK_CPUSVN, TestPki, raw_signature
from redpill_integrations.emulator.quote import QE_ATTRIBUTES, QE_ISVSVN, QE_MRSIGNER, TEE_TCB_SVN

__all__ = ["TCB_STATUSES", "Collateral", "build_collateral"]

TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
_ADVISORIES: dict[str, list[str]] = {
    s: [] if s == "UpToDate" else ["INTEL-SA-00837"] for s in TCB_STATUSES
}


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class Collateral:
    """What a PCCS would serve for the emulator's FMSPC."""

    tcb_info: str
    tcb_info_signature: bytes
    qe_identity: str
    qe_identity_signature: bytes
    pki: TestPki

    def to_v3_json(self) -> str:
        """dcap-qvl ``QuoteCollateralV3.from_json`` form (bytes as hex)."""
        return json.dumps(
            {
                "pck_crl_issuer_chain": self.pki.pck_crl_issuer_chain_pem,
                "root_ca_crl": self.pki.root_crl_der.hex(),
                "pck_crl": self.pki.pck_crl_der.hex(),
                "tcb_info_issuer_chain": self.pki.tcb_chain_pem,
                "tcb_info": self.tcb_info,
                "tcb_info_signature": self.tcb_info_signature.hex(),
                "qe_identity_issuer_chain": self.pki.tcb_chain_pem,
                "qe_identity": self.qe_identity,
                "qe_identity_signature": self.qe_identity_signature.hex(),
            }
        )

    # PCCS bodies and headers --------------------------------------------------------------
    def tcb_body(self) -> bytes:
        return (
            '{"tcbInfo":' + self.tcb_info + ',"signature":"' + self.tcb_info_signature.hex() + '"}'
        ).encode()

    def qe_identity_body(self) -> bytes:
        return (
            '{"enclaveIdentity":'
            + self.qe_identity
            + ',"signature":"'
            + self.qe_identity_signature.hex()
            + '"}'
        ).encode()

    @staticmethod
    def chain_header(pem: str) -> str:
        return urlquote(pem, safe="")


def build_collateral(
    pki: TestPki, *, tcb_status: str = "UpToDate", now: dt.datetime | None = None
) -> Collateral:
    if tcb_status not in TCB_STATUSES:
        raise ValueError(f"unknown TCB status {tcb_status!r}")
    now = now or dt.datetime.now(dt.UTC)
    issue, nxt = _rfc3339(now - dt.timedelta(hours=1)), _rfc3339(now + dt.timedelta(days=30))
    level = {
        "tcb": {
            "sgxtcbcomponents": [{"svn": v} for v in PCK_CPUSVN],
            "pcesvn": PCE_SVN,
            "tdxtcbcomponents": [{"svn": v} for v in TEE_TCB_SVN],
        },
        "tcbDate": "2025-01-01T00:00:00Z",
        "tcbStatus": tcb_status,
        "advisoryIDs": _ADVISORIES[tcb_status],
    }
    tcb_info = _compact(
        {
            "id": "TDX",
            "version": 3,
            "issueDate": issue,
            "nextUpdate": nxt,
            "fmspc": FMSPC.hex(),
            "pceId": "0000",
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tdxModule": {
                "mrsigner": "00" * 48,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
            },
            "tcbLevels": [level],
        }
    )
    qe_identity = _compact(
        {
            "id": "TD_QE",
            "version": 2,
            "issueDate": issue,
            "nextUpdate": nxt,
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": QE_ATTRIBUTES.hex().upper(),
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": QE_MRSIGNER.hex().upper(),
            "isvprodid": 2,
            "tcbLevels": [
                {
                    "tcb": {"isvsvn": QE_ISVSVN},
                    "tcbDate": "2025-01-01T00:00:00Z",
                    "tcbStatus": "UpToDate",
                }
            ],
        }
    )
    return Collateral(
        tcb_info=tcb_info,
        tcb_info_signature=raw_signature(pki.tcb_key, tcb_info.encode()),
        qe_identity=qe_identity,
        qe_identity_signature=raw_signature(pki.tcb_key, qe_identity.encode()),
        pki=pki,
    )
