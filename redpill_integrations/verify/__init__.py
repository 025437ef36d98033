"""The pure verification core: bytes and parsed models in, a typed result out.

No network, no clock, no environment: time is always passed in as ``now``. The wire layer fetches
evidence and calls, in order::

    sig = check_signature(record, request_body=..., response_body=..., streamed=..., policy=...)
    report = parse_report(report_bytes)   # to find the quote(s) and nvidia_payload to fetch for
    verdict = verify_attestation(evidence, signer=sig.signer, policy=..., trust=..., now=...)
    result = assemble_result(sig, verdict, chat_id=..., model=..., policy=..., now=...)

:mod:`.judgement` holds the same steps made total (``judge_attestation``, and ``judge``, which
receipts run offline): a crash of ours there is ``CHECK_NOT_RUN``, never a pass.
"""

from redpill_integrations.verify.assemble import assemble_result, required_checks
from redpill_integrations.verify.attestation import (
    MISSING_COLLATERAL,
    MISSING_JWKS,
    MISSING_NRAS,
    verify_attestation,
)
from redpill_integrations.verify.judgement import (
    CRASHED,
    failed_fetch_verdict,
    judge,
    judge_attestation,
)
from redpill_integrations.verify.models import (
    AttestationEvidence,
    AttestationVerdict,
    SignatureCheck,
    SignatureRecord,
)
from redpill_integrations.verify.report import AttestationReport, NodeAttestation, parse_report
from redpill_integrations.verify.signature import check_signature
from redpill_integrations.verify.tdx import quote_fmspc, quote_pck_ca

__all__ = [
    "CRASHED",
    "MISSING_COLLATERAL",
    "MISSING_JWKS",
    "MISSING_NRAS",
    "AttestationEvidence",
    "AttestationReport",
    "AttestationVerdict",
    "NodeAttestation",
    "SignatureCheck",
    "SignatureRecord",
    "assemble_result",
    "check_signature",
    "failed_fetch_verdict",
    "judge",
    "judge_attestation",
    "parse_report",
    "quote_fmspc",
    "quote_pck_ca",
    "required_checks",
    "verify_attestation",
]
