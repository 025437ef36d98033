"""Response bytes changed *after* signing (the ``tamper_response`` fault)."""

from __future__ import annotations

import json

__all__ = ["tamper_json", "tamper_sse"]


def tamper_json(body: bytes, mode: str | None) -> bytes:
    """Any mode changes the assistant's content (still valid JSON, different meaning)."""
    if mode is None:
        return body
    data = json.loads(body)
    message = data["choices"][0]["message"]
    message["content"] = (message.get("content") or "") + " [altered in transit]"
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _altered(event: bytes) -> bytes:
    data = json.loads(event[len(b"data: ") :])
    choices = data.get("choices") or [{}]
    delta = choices[0].setdefault("delta", {})
    delta["content"] = (delta.get("content") or "") + " [altered]"
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def tamper_sse(events: list[bytes], mode: str | None) -> list[bytes]:
    """alter / inject / drop / reorder one event of the stream (never the first, so the id
    stays readable)."""
    if mode is None:
        return list(events)
    out = list(events)
    if mode == "alter":
        out[1] = _altered(out[1])
    elif mode == "inject":
        out.insert(2, _altered(out[1]))
    elif mode == "drop":
        del out[1]
    elif mode == "reorder":
        out[1], out[2] = out[2], out[1]
    else:
        raise ValueError(f"unknown tamper mode {mode!r}")
    return out
