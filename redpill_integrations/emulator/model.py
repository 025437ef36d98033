"""The emulator's deterministic "model": scripted replies rendered as OpenAI JSON or SSE bytes."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from redpill_integrations.emulator.reply import Reply
from redpill_integrations.emulator.reply import dumps as _dumps
from redpill_integrations.emulator.structured import argument_fragments, structured_reply

__all__ = [
    "ModelInfo",
    "Reply",
    "ReplyScript",
    "completion_tokens",
    "render_json",
    "render_sse_events",
]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A served model: its public id, the proxy's own served name and whether it is in a TEE."""

    id: str
    served_name: str
    tee: bool = True


class ReplyScript:
    """Per-model queues of scripted replies (``None`` = any model); thread-safe."""

    def __init__(self) -> None:
        self._queues: dict[str | None, deque[Reply]] = {}
        self._lock = threading.Lock()

    def add(self, model: str | None, replies: list[Reply]) -> None:
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def next(self, model: str, messages: Any, *, request: Mapping[str, Any] | None = None) -> Reply:
        """The next scripted reply for ``model``; else, when ``request`` (the chat request body)
        asks for tools, tool results or a ``response_format``, the structured answer
        (:mod:`~redpill_integrations.emulator.structured`); else a text echo of the prompt."""
        with self._lock:
            for key in (model, None):
                q = self._queues.get(key)
                if q:
                    return q.popleft()
        structured = structured_reply(request) if request is not None else None
        if structured is not None:
            return structured
        return Reply.text(f"Emulated reply from {model}: {_last_user_text(messages)[:200]}")


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    return c
                if isinstance(c, list):
                    return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def completion_tokens(reply: Reply) -> int:
    """The completion token count ``usage`` reports for ``reply`` (about 4 characters a token)."""
    return max(
        1, len((reply.content or "") + (reply.tool_arguments or "") + (reply.reasoning or "")) // 4
    )


def _usage(messages: Any, reply: Reply) -> dict[str, int]:
    prompt = max(1, len(_dumps(messages)) // 4)
    completion = completion_tokens(reply)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def new_chat_id() -> str:
    return "chatcmpl-" + secrets.token_hex(16)


def _tool_call(reply: Reply, call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": reply.tool_name, "arguments": reply.tool_arguments},
    }


def render_json(chat_id: str, model: str, reply: Reply, messages: Any) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    finish = "stop"
    if reply.tool_name is not None:
        message["tool_calls"] = [_tool_call(reply, "call_" + chat_id[-12:])]
        finish = "tool_calls"
    body = {
        "id": chat_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(messages, reply),
    }
    return _dumps(body).encode()


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def render_sse_events(
    chat_id: str, model: str, reply: Reply, messages: Any, *, include_usage: bool
) -> list[bytes]:
    """The stream as a list of complete ``data: …\\n\\n`` events, ending with ``[DONE]``."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + _dumps(body).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    if reply.reasoning:
        events += [chunk({"reasoning_content": p}) for p in _pieces(reply.reasoning)]
    if reply.tool_name is not None:
        call = _tool_call(reply, "call_" + chat_id[-12:])
        call["function"]["arguments"] = ""
        events.append(chunk({"tool_calls": [{"index": 0, **call}]}))
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
            for p in argument_fragments(reply.tool_arguments or "")
        ]
        events.append(chunk({}, "tool_calls"))
    else:
        events += [chunk({"content": p}) for p in _pieces(reply.content or "")]
        events.append(chunk({}, "stop"))
    if include_usage:
        usage = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(messages, reply),
        }
        events.append(b"data: " + _dumps(usage).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events
