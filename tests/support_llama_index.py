"""LlamaIndex test helpers shared by the unit and integration suites."""

from __future__ import annotations

from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent


class Collector(BaseEventHandler):
    """An instrumentation handler that keeps every event it sees."""

    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[Any]:
        return [e for e in self.events if e.class_name() == name]
