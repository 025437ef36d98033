"""One assistant turn the emulator's model sends: text, a tool call or JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["Reply", "dumps"]


def dumps(obj: Any) -> str:
    """Compact JSON as models send it, non-ASCII kept as is."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted assistant turn. Build with :meth:`text`, :meth:`tool_call` or :meth:`json`."""

    content: str | None = None
    reasoning: str | None = None
    tool_name: str | None = None
    tool_arguments: str | None = None

    @classmethod
    def text(cls, content: str, *, reasoning: str | None = None) -> Reply:
        return cls(content=content, reasoning=reasoning)

    @classmethod
    def tool_call(cls, name: str, arguments: Mapping[str, Any]) -> Reply:
        return cls(tool_name=name, tool_arguments=dumps(dict(arguments)))

    @classmethod
    def json(cls, obj: Any) -> Reply:
        return cls(content=dumps(obj))
