"""The protocol seam: which evidence to fetch for a captured exchange, and how to judge it.

A verification has steps every protocol shares, run by :mod:`.verify_flow` (no exchange at all →
``MALFORMED_RESPONSE``; building and storing the one receipt) and by
``RedpillVerifier.verify_exchange`` (the crash guard: ``CHECK_NOT_RUN``), and a middle that
depends on how the server proves what it served. That middle is a :class:`VerificationProtocol`:

* ``accepts(exchange)``: whether this protocol is the one for ``exchange``, judged from the
  captured exchange alone (its response headers, say), never by fetching anything;
* ``judge(exchange, *, now)``: a sans-I/O :data:`~.flow.Flow` that runs the protocol's own early
  checks (the exchange's HTTP status, capture problems, a missing id, the model), fetches its
  evidence through effects, judges it with the pure core (:mod:`redpill_integrations.verify`) and
  returns a :class:`Judgement`: the verdict plus the evidence the receipt keeps. It never raises
  for bad evidence or a failed fetch (those are reasons); a bug of ours may raise, and becomes
  ``CHECK_NOT_RUN`` in the verifier's guard.

:func:`choose` picks the first protocol of an ordered tuple that accepts the exchange; the last
one must accept everything. Today that tuple is ``(AciProtocol, LegacyProtocol)``
(:mod:`.aci`: any ``x-aci-*`` response header, the gateway's signed receipts; :mod:`.legacy`: the
per-node signature and attestation-report endpoints, the fallback).

**Adding a protocol.** Write ``wire/<name>.py`` with a frozen class that has ``name``,
``accepts`` and ``judge`` as above (reuse :mod:`.flow` effects, :mod:`.http` endpoints and pure
checks in ``verify/``); put the evidence its receipts must keep into :class:`Judgement` (add a
field there and in ``receipts.Receipt`` if nothing fits); then list it *before* the legacy
protocol in ``RedpillVerifier`` (``wire/verifier.py``, where the tuple is built). Adapters,
receipts storage and the crash guard need no change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.verify import AttestationEvidence, SignatureRecord
from redpill_integrations.verify.aci.bundle import AciEvidence
from redpill_integrations.wire.capture import CapturedExchange
from redpill_integrations.wire.flow import Flow

__all__ = ["Judgement", "VerificationProtocol", "choose"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Judgement:
    """A protocol's verdict on one exchange and the evidence the receipt keeps for re-verifying
    it offline (``None``/0 when the protocol stopped before fetching it)."""

    result: VerificationResult
    protocol: str
    signature: SignatureRecord | None = None
    signature_attempts: int = 0
    attestation: AttestationEvidence | None = None
    attestation_fetch_reason: Reason | None = None
    #: the ACI protocol's evidence (documents as received, the exchange's headers)
    aci: AciEvidence | None = None


class VerificationProtocol(Protocol):
    """How one kind of server proves what it served (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def accepts(self, exchange: CapturedExchange) -> bool: ...

    def judge(self, exchange: CapturedExchange, *, now: datetime) -> Flow[Judgement]: ...


def choose(
    protocols: Sequence[VerificationProtocol], exchange: CapturedExchange
) -> VerificationProtocol:
    """The first of ``protocols`` that accepts ``exchange`` (the last one is the fallback)."""
    for protocol in protocols[:-1]:
        if protocol.accepts(exchange):
            return protocol
    return protocols[-1]
