"""The upstream session record behind a receipt (docs/protocol-aci.md §6).

``session_id = sha256(JCS(record))`` (bare hex, not part of the record); the evidence data, when
present, hashes to its digest; the receipt's ``served_at`` lies in ``[established_at,
expires_at]``; every claim the policy requires is ``asserted``. Any failure: ``SESSION_MISMATCH``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from redpill_integrations.verify.aci.jcs import NotCanonical, jcs
from redpill_integrations.verify.aci.models import AciSession

__all__ = ["check_session", "session_id_of"]


def session_id_of(session: AciSession) -> str | None:
    """The id the record hashes to, or None when it cannot be canonicalized."""
    try:
        return hashlib.sha256(jcs(session.document)).hexdigest()
    except NotCanonical:
        return None


def check_session(
    session: AciSession, *, session_id: str, served_at: int, required_claims: tuple[str, ...]
) -> str | None:
    """None when the record is the one ``session_id`` names and satisfies the policy."""
    if session_id_of(session) != session_id:
        return "the session record does not hash to the receipt's session_id"
    problem = _check_evidence(session)
    if problem is not None:
        return problem
    if not session.established_at <= served_at <= session.expires_at:
        return "served_at is outside the session's [established_at, expires_at]"
    for name in required_claims:
        claim = session.claims.get(name)
        if not isinstance(claim, dict) or claim.get("status") != "asserted":
            return f"session claim {name[:64]!r} is not asserted"
    return None


def _check_evidence(session: AciSession) -> str | None:
    if session.evidence_data is None:
        return None  # digest-only or empty evidence: nothing to recompute
    if session.evidence_digest is None:
        return "session evidence has data but no digest"
    head, sep, payload = session.evidence_data.partition(";base64,")
    if not sep or not head.startswith("data:"):
        return "session evidence data is not a base64 data: URL"
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "session evidence data is not valid base64"
    if "sha256:" + hashlib.sha256(data).hexdigest() != session.evidence_digest:
        return "session evidence data does not hash to its digest"
    return None
