"""ACI (Attested Confidential Inference) verification, pure: bytes, parsed models and ``now`` in,
a verdict out. The protocol as implemented, check by check, is ``docs/protocol-aci.md``.

* :func:`judge_aci` — the one judge for an exchange (live and offline re-verification);
* :func:`verify_gateway` — the gateway identity alone (cacheable per report);
* :func:`parse_aci_report`, :func:`parse_receipt`, :func:`parse_session` — boundary parsers;
* :func:`jcs` — the ACI subset of RFC 8785 canonical JSON.
"""

from redpill_integrations.verify.aci.custody import CustodyVerdict, verify_custody
from redpill_integrations.verify.aci.exchange import REFUSAL_STATUSES, AciExchange
from redpill_integrations.verify.aci.identity import (
    GatewayVerdict,
    report_data_statement,
    verify_gateway,
)
from redpill_integrations.verify.aci.jcs import NotCanonical, jcs, jcs_sha256
from redpill_integrations.verify.aci.judge import judge_aci
from redpill_integrations.verify.aci.models import (
    ACI_VERSION,
    AciReceipt,
    AciReport,
    AciSession,
    CustodyKey,
    KeyEntry,
    WorkloadKeyset,
    parse_aci_report,
    parse_receipt,
    parse_session,
)
from redpill_integrations.verify.aci.receipt import check_receipt, verify_receipt_signature
from redpill_integrations.verify.aci.session import check_session, session_id_of

__all__ = [
    "ACI_VERSION",
    "REFUSAL_STATUSES",
    "AciExchange",
    "AciReceipt",
    "AciReport",
    "AciSession",
    "CustodyKey",
    "CustodyVerdict",
    "GatewayVerdict",
    "KeyEntry",
    "NotCanonical",
    "WorkloadKeyset",
    "check_receipt",
    "check_session",
    "jcs",
    "jcs_sha256",
    "judge_aci",
    "parse_aci_report",
    "parse_receipt",
    "parse_session",
    "report_data_statement",
    "session_id_of",
    "verify_custody",
    "verify_gateway",
    "verify_receipt_signature",
]
