"""The emulator's own canonical JSON encoder (the ACI subset of RFC 8785), an independent oracle.

Sorted member names, compact separators, raw UTF-8 (no ``\\u`` escapes beyond what JSON requires),
integers verbatim (any size), no floats. Member names must be ASCII, as ACI generation B requires.
See ``docs/aci-emulator.md``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical"]


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if not isinstance(key, str) or not key.isascii():
                raise TypeError(f"canonical JSON member names must be ASCII strings: {key!r}")
            if i:
                out.append(",")
            out.append(json.dumps(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"canonical JSON cannot encode {type(value).__name__}")


def canonical(value: Any) -> bytes:
    """The canonical bytes of ``value`` (raises ``TypeError`` on floats or non-ASCII names)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
