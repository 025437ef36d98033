"""The ACI gateway's identity: who holds the receipt keys (docs/protocol-aci.md §3).

:func:`verify_gateway` is pure: a parsed report, our nonce, the DCAP collateral (or None), policy,
trust anchors and ``now`` in; a :class:`GatewayVerdict` out. In order:

``keyset``        digest recomputed (``KEYSET_DIGEST_MISMATCH``), no key under two roles
                  (``KEY_ROLE_REUSE``), ``now < not_after`` (``KEYSET_EXPIRED``) and not beyond
                  the policy's lifetime bound (``KEYSET_EXPIRY_IMPLAUSIBLE``)
``report_data``   sha256 of the statement over the recomputed digest and our nonce; the quote's
``nonce``         slot is that ‖ 32 zero bytes and equals ``evidence.quote_report_data``
``quote``/``tcb`` DCAP under the trust anchors' root; TCB per policy; a debug TD is invalid
``event_log``     RTMR0-3 replay, runtime digests recomputed, identity events measured once
``compose``       sha256(app_compose) = ``compose-hash`` event; ``mr_config_id`` = 01‖hash‖0
``measurements``  app id accepted, OS image in the registry (its MRTD/RTMR1/RTMR2 when listed),
                  ``os-image-hash`` = ``vm_config.os_image_hash``, policy allowlists
``key_custody``   dstack KMS chains to an accepted root cover the receipt keys
``source_commit`` ``source_provenance.repo_commit`` counts only when the measured compose pins it
                  (:mod:`.provenance`); ``policy.require_source_provenance`` fails the
                  ``measurements`` check with ``PROVENANCE_UNCORROBORATED`` otherwise
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify.aci.custody import verify_custody
from redpill_integrations.verify.aci.jcs import NotCanonical, jcs_sha256
from redpill_integrations.verify.aci.models import AciReport
from redpill_integrations.verify.aci.provenance import corroborated_commit
from redpill_integrations.verify.checklog import CheckLog, judge_quote
from redpill_integrations.verify.eventlog import AppIdentity, check_event_log
from redpill_integrations.verify.tdx import (
    QuoteVerification,
    TdFields,
    epoch_seconds,
    parse_td_quote,
    verify_quote,
)

__all__ = ["GatewayVerdict", "report_data_statement", "verify_gateway"]

_NONCE = re.compile(r"[0-9a-f]{64}")
_DEBUG = 0x01  # td_attributes byte 0, bit 0


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayVerdict:
    """What :func:`verify_gateway` found. Reusable for every receipt of the same report."""

    checks: Mapping[str, CheckOutcome]
    reasons: tuple[Reason, ...]
    detail: str | None
    nonce: str
    report: AciReport
    keyset_digest: str | None = None  # recomputed; None when the keyset cannot be hashed
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    td: TdFields | None = None
    identity: AppIdentity | None = None  # measured, only when the event log replayed
    kms_root: str | None = None
    code_identity: Mapping[str, Any] | None = None
    valid_until: datetime | None = None
    #: the report's ``source_provenance.repo_commit``, only when the measured compose pins it
    source_commit: str | None = None


def report_data_statement(keyset_digest: str, nonce: str | None) -> bytes:
    """The exact statement bytes whose sha256 is ``attestation.report_data`` (fixed order)."""
    member = "null" if nonce is None else f'"{nonce}"'
    return (
        f'{{"keyset_digest":"{keyset_digest}","nonce":{member},"purpose":"aci.report_data.v1"}}'
    ).encode()


def verify_gateway(
    report: AciReport,
    *,
    nonce: str,
    collateral_json: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
) -> GatewayVerdict:
    """Run the checks of docs/protocol-aci.md §3 on ``report`` for ``nonce`` (64 lower-case
    hex). Never raises ours."""
    log = CheckLog()
    digest = _check_keyset(report, policy, now, log)
    _check_statement(report, digest, nonce, log)
    td = _parse_quote(report, log)
    quote = _check_quote(report, td, collateral_json, policy, trust, now, log)
    identity = _check_event_log(report, td, log)
    _check_compose(report, td, identity, log)
    source_commit = _check_provenance(report, policy, log)  # a failure makes it "unpinned"
    code_identity = _check_measurements(report, td, identity, policy, trust, log)
    kms_root = _check_custody(report, identity, trust, log)
    if code_identity is not None:
        matched = list(code_identity["matched"]) + (["source_commit"] if source_commit else [])
        kind = code_identity["kind"] if kms_root is not None else "unpinned"
        code_identity = {"kind": kind, "matched": (["kms_root"] if kms_root else []) + matched}
    return GatewayVerdict(
        checks=dict(log.checks),
        reasons=tuple(log.reasons),
        detail=log.detail,
        nonce=nonce,
        report=report,
        keyset_digest=digest,
        tcb_status=quote.status if quote else None,
        advisory_ids=quote.advisory_ids if quote else (),
        td=td,
        identity=identity,
        kms_root=kms_root,
        code_identity=code_identity,
        valid_until=quote.valid_until if quote else None,
        source_commit=source_commit,
    )


def _check_keyset(
    report: AciReport, policy: VerificationPolicy, now: datetime, log: CheckLog
) -> str | None:
    keyset = report.keyset
    try:
        digest = jcs_sha256(keyset.document)
    except NotCanonical as exc:
        log.fail("keyset", Reason.KEYSET_DIGEST_MISMATCH, f"keyset cannot be canonicalized: {exc}")
        return None
    if digest != report.workload_keyset_digest:
        log.fail("keyset", Reason.KEYSET_DIGEST_MISMATCH, "recomputed keyset digest differs")
    receipt = {k.public_key for k in keyset.receipt_keys}
    e2ee = [k.public_key for k in keyset.e2ee_keys]
    if receipt & set(e2ee) or len(set(e2ee)) != len(e2ee):
        log.fail("keyset", Reason.KEY_ROLE_REUSE, "one public key is listed under two roles")
    at = epoch_seconds(now)
    if at >= keyset.not_after:
        log.fail("keyset", Reason.KEYSET_EXPIRED, f"keyset expired at {keyset.not_after}")
    elif keyset.not_after - at > policy.max_keyset_lifetime:
        log.fail(
            "keyset",
            Reason.KEYSET_EXPIRY_IMPLAUSIBLE,
            f"keyset not_after is {keyset.not_after - at} s away, beyond the policy's bound",
        )
    log.ok("keyset")
    return digest


def _check_statement(report: AciReport, digest: str | None, nonce: str, log: CheckLog) -> None:
    if not _NONCE.fullmatch(nonce):
        log.fail("nonce", Reason.NONCE_MISMATCH, "our nonce is not 64 lower-case hex characters")
        log.skip("report_data")
        return
    if digest is None:
        log.skip("report_data", detail="no recomputed keyset digest to bind")
        log.skip("nonce")
        return
    if hashlib.sha256(report_data_statement(digest, nonce)).digest() == report.report_data:
        log.ok("report_data")
        log.ok("nonce")
        return
    log.fail("report_data", Reason.REPORT_DATA_MISMATCH, "statement does not hash to report_data")
    restated = report_data_statement(report.workload_keyset_digest, nonce)
    if hashlib.sha256(restated).digest() == report.report_data:
        log.ok("nonce")  # our nonce is in it; the keyset digest is what does not bind
    else:
        log.fail("nonce", Reason.NONCE_MISMATCH, "the attested statement does not carry our nonce")


def _parse_quote(report: AciReport, log: CheckLog) -> TdFields | None:
    try:
        td = parse_td_quote(report.quote)
    except EvidenceError as exc:
        log.fail("quote", Reason.QUOTE_INVALID, str(exc))
        return None
    slot = report.report_data + b"\x00" * 32
    if td.report_data != slot or report.quote_report_data != td.report_data:
        log.fail(
            "report_data",
            Reason.REPORT_DATA_MISMATCH,
            "the quote's report-data slot is not report_data ‖ 32 zero bytes / quote_report_data",
        )
    return td


def _check_quote(
    report: AciReport,
    td: TdFields | None,
    collateral_json: str | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    now: datetime,
    log: CheckLog,
) -> QuoteVerification | None:
    if td is None:
        log.skip("tcb")
        return None
    if td.td_attributes[0] & _DEBUG:
        log.fail("quote", Reason.QUOTE_INVALID, "the gateway TD runs in debug mode")
        log.skip("tcb")
        return None
    if collateral_json is None:
        log.skip("quote", Reason.DEPENDENCY_UNAVAILABLE, "no DCAP collateral for the quote")
        log.skip("tcb")
        return None
    qv = verify_quote(report.quote, collateral_json, root_ca_der=trust.intel_root_ca_der, now=now)
    judge_quote(qv, policy, log)
    return qv


def _check_event_log(report: AciReport, td: TdFields | None, log: CheckLog) -> AppIdentity | None:
    if td is None:
        log.skip("event_log", detail="no parsed quote to replay against")
        return None
    problem, identity = check_event_log(report.event_log, td.rtmrs)
    if problem is None and identity.repeated:
        problem = f"runtime event {identity.repeated[0]!r} is measured more than once"
    if problem is not None:
        log.fail("event_log", Reason.EVENT_LOG_MISMATCH, problem)
        return None
    log.ok("event_log")
    return identity


def _check_compose(
    report: AciReport, td: TdFields | None, identity: AppIdentity | None, log: CheckLog
) -> None:
    if td is None or identity is None:
        log.skip("compose")
        return
    if identity.compose_hash is None or report.app_compose is None:
        log.fail("compose", Reason.COMPOSE_MISMATCH, "no compose-hash event or no app_compose")
        return
    if hashlib.sha256(report.app_compose.encode()).hexdigest() != identity.compose_hash:
        log.fail("compose", Reason.COMPOSE_MISMATCH, "sha256(app_compose) ≠ compose-hash event")
        return
    expected = (b"\x01" + bytes.fromhex(identity.compose_hash)).ljust(48, b"\x00")
    if td.mr_config_id != expected:
        log.fail("compose", Reason.COMPOSE_MISMATCH, "mr_config_id is not 0x01 ‖ compose_hash")
        return
    log.ok("compose")


def _check_measurements(
    report: AciReport,
    td: TdFields | None,
    identity: AppIdentity | None,
    policy: VerificationPolicy,
    trust: TrustAnchors,
    log: CheckLog,
) -> Mapping[str, Any] | None:
    if td is None or identity is None:
        log.skip("measurements")
        return None
    bad = Reason.MEASUREMENT_NOT_ALLOWED
    matched: list[str] = []
    if identity.app_id not in trust.aci_app_ids:
        log.fail("measurements", bad, f"app id {identity.app_id!s:.40} is not an accepted gateway")
    else:
        matched.append("app_id")
    image_hash = identity.os_image_hash
    if image_hash is None or report.vm_config.get("os_image_hash") != image_hash:
        log.fail("measurements", bad, "os-image-hash event ≠ vm_config.os_image_hash")
    elif (image := trust.os_images.get(image_hash)) is None:
        log.fail("measurements", bad, f"OS image {image_hash[:16]}… is not in the registry")
    elif image.has_measurements and (
        image.mrtd not in (None, td.mrtd.hex())
        or image.rtmr1 not in (None, td.rtmrs[1].hex())
        or image.rtmr2 not in (None, td.rtmrs[2].hex())
    ):
        log.fail("measurements", bad, f"MRTD/RTMR1/RTMR2 differ from registry {image.name!r}")
    else:
        matched.append("os_image")
    pinned = _check_allowlists(td, identity, policy, log)
    log.ok("measurements")
    if log.checks.get("measurements") is CheckOutcome.FAIL:
        return {"kind": "unpinned", "matched": matched}
    kind = "pinned" if pinned else "registry"
    return {"kind": kind, "matched": [*matched, *pinned]}


def _check_provenance(report: AciReport, policy: VerificationPolicy, log: CheckLog) -> str | None:
    if log.checks.get("compose") is not CheckOutcome.PASS:
        return None  # an unmeasured compose corroborates nothing (and fails or skips already)
    commit = corroborated_commit(report.app_compose, report.source_commit)
    if commit is None and policy.require_source_provenance:
        log.fail(
            "measurements",
            Reason.PROVENANCE_UNCORROBORATED,
            "source_provenance.repo_commit is absent or not the commit the measured compose pins",
        )
    return commit


def _check_allowlists(
    td: TdFields, identity: AppIdentity, policy: VerificationPolicy, log: CheckLog
) -> list[str]:
    values = {
        "allowed_compose_hashes": identity.compose_hash,
        "allowed_app_ids": identity.app_id,
        "allowed_os_image_hashes": identity.os_image_hash,
        "allowed_mrtds": td.mrtd.hex(),
        "allowed_rtmr0": td.rtmrs[0].hex(),
        "allowed_rtmr1": td.rtmrs[1].hex(),
        "allowed_rtmr2": td.rtmrs[2].hex(),
    }
    pinned = []
    for name, value in values.items():
        allowed = getattr(policy, name)
        if allowed is None:
            continue
        if value not in allowed:
            log.fail("measurements", Reason.MEASUREMENT_NOT_ALLOWED, f"{name} does not list it")
        else:
            pinned.append(name.removeprefix("allowed_"))
    return pinned


def _check_custody(
    report: AciReport, identity: AppIdentity | None, trust: TrustAnchors, log: CheckLog
) -> str | None:
    if identity is None or identity.app_id is None:
        log.skip("key_custody", detail="no measured app id to anchor the custody chains")
        return None
    verdict = verify_custody(
        report.custody,
        report.keyset,
        app_id=identity.app_id,
        accepted_roots=trust.kms_root_pubkeys,
    )
    if verdict.problem is not None:
        log.fail("key_custody", Reason.KEY_CUSTODY_INVALID, verdict.problem)
        return None
    log.ok("key_custody")
    return verdict.kms_root
