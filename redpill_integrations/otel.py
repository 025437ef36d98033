"""Verdicts in OpenTelemetry (the ``[otel]`` extra: ``opentelemetry-api`` only).

:func:`record_verdict` is called once per verified call, in the caller's context. It adds the
verdict to the current span, when that span is recording:

- ``redpill.verification.status``: ``verified`` / ``failed`` / ``unverifiable``
- ``redpill.verification.reasons``: the reason codes (a string array, empty when verified)
- ``redpill.verification.protocol``: the verdict's protocol (``legacy`` when it names none)
- ``redpill.verification.receipt_id``, ``redpill.verification.upstream.provider``,
  ``redpill.verification.signer``: when the verdict has them
- from the GenAI semantic conventions, for the model call: ``gen_ai.response.id`` (the chat id)
  and ``gen_ai.response.model``

and counts the verdict on the ``redpill.verification.verdicts`` counter, with the attributes
``redpill.verification.status`` and ``redpill.verification.reason`` (the first reason code, or
``none``), so dashboards can alert on failed or unverifiable calls by cause.

Without ``opentelemetry-api`` installed this does nothing; with the API but no SDK the current
span is not recording and the counter is the API's no-op, so the verdict is not even serialised.
Any exception inside telemetry is swallowed (logged at debug): tracing never breaks a call.
"""

from __future__ import annotations

import logging
from typing import Any

from redpill_integrations._version import __version__
from redpill_integrations.results import VerificationResult

__all__ = ["ATTR_PREFIX", "COUNTER_NAME", "record_verdict"]

logger = logging.getLogger(__name__)

ATTR_PREFIX = "redpill.verification"
COUNTER_NAME = "redpill.verification.verdicts"

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the [otel] extra is not installed: record_verdict is a no-op
    _metrics = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]

_counter: Any = None


def _verdict_counter() -> Any:
    global _counter
    if _counter is None and _metrics is not None:
        # the API's global meter is a proxy: an SDK MeterProvider installed later still gets it
        meter = _metrics.get_meter("redpill_integrations", __version__)
        _counter = meter.create_counter(
            COUNTER_NAME, unit="{verdict}", description="Verified LLM calls by verdict and reason"
        )
    return _counter


def span_attributes(result: VerificationResult) -> dict[str, Any]:
    """The attributes :func:`record_verdict` sets on a span (``None`` values left out)."""
    data = result.to_dict()
    aci = data.get("aci")
    upstream = aci.get("upstream") if isinstance(aci, dict) else None
    provider = upstream.get("provider") if isinstance(upstream, dict) else None
    attrs: dict[str, Any] = {
        f"{ATTR_PREFIX}.status": result.status.value,
        f"{ATTR_PREFIX}.reasons": [r.value for r in result.reasons],
        f"{ATTR_PREFIX}.protocol": str(data.get("protocol") or "legacy"),
        f"{ATTR_PREFIX}.receipt_id": result.receipt_id,
        f"{ATTR_PREFIX}.upstream.provider": str(provider) if provider else None,
        f"{ATTR_PREFIX}.signer": result.signer,
        "gen_ai.response.id": result.chat_id,
        "gen_ai.response.model": result.model,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def record_verdict(result: VerificationResult, *, span: Any = None) -> None:
    """Add ``result`` to ``span`` (default: the current span) and count it (module docstring).
    Never raises."""
    if _trace is None:
        return
    try:
        target = span if span is not None else _trace.get_current_span()
        if target.is_recording():
            target.set_attributes(span_attributes(result))
        counter = _verdict_counter()
        if counter is not None:
            reason = result.reasons[0].value if result.reasons else "none"
            counter.add(
                1,
                {f"{ATTR_PREFIX}.status": result.status.value, f"{ATTR_PREFIX}.reason": reason},
            )
    except Exception:  # telemetry must never break the verified call
        logger.debug("could not record the verdict in OpenTelemetry", exc_info=True)
