"""LlamaIndex instrumentation for Redpill verdicts: :class:`RedpillVerificationEvent`.

Every verified :class:`~redpill_integrations.llama_index.Redpill` call dispatches exactly one
event through ``llama_index.core.instrumentation`` (dispatcher
``redpill_integrations.llama_index.events``, which propagates to the root dispatcher), inside the
span of the LLM call that produced it (``span_id``). Handlers observe verdicts; they cannot block
a call: the ``strict`` / ``annotate`` modes are enforced by the LLM itself.

Usage::

    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    class Audit(BaseEventHandler):
        def handle(self, event, **kwargs):
            if isinstance(event, RedpillVerificationEvent):
                print(event.status, event.chat_id, event.reasons)

    get_dispatcher().add_event_handler(Audit())
"""

from __future__ import annotations

from typing import Any

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events import BaseEvent

from redpill_integrations.results import VerificationResult

__all__ = ["RedpillVerificationEvent", "dispatch_verification"]

dispatcher = get_dispatcher(__name__)


class RedpillVerificationEvent(BaseEvent):
    """The verdict of one Redpill call (``verification`` is ``VerificationResult.to_dict()``)."""

    verification: dict[str, Any]
    #: the LLM's mode when the verdict was reached: ``"strict"`` or ``"annotate"``
    mode: str
    #: False when the consumer stopped a stream early (the verdict is then STREAM_INCOMPLETE)
    delivered: bool = True

    @classmethod
    def class_name(cls) -> str:
        return "RedpillVerificationEvent"

    @property
    def status(self) -> str:
        return str(self.verification.get("status"))

    @property
    def reasons(self) -> list[str]:
        return list(self.verification.get("reasons") or [])

    @property
    def chat_id(self) -> str | None:
        value = self.verification.get("chat_id")
        return value if isinstance(value, str) else None

    @property
    def result(self) -> VerificationResult:
        return VerificationResult.from_dict(self.verification)


def dispatch_verification(
    result: VerificationResult, *, mode: str, span_id: str | None, delivered: bool = True
) -> RedpillVerificationEvent:
    """Send one event for ``result`` to every handler, tagged with the LLM call's span."""
    event = RedpillVerificationEvent(
        verification=result.to_dict(), mode=mode, delivered=delivered, span_id=span_id
    )
    dispatcher.event(event)
    return event
