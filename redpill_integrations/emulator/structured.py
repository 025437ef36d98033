"""Structured answers: tool calls, JSON mode and JSON-schema output, generated deterministically.

The emulator's model reads what a request asks for and answers like a real model would:

- ``tools`` (and ``tool_choice`` other than ``"none"``): it calls one tool — the one ``tool_choice``
  forces, else the one the last user message names (the longest name that appears), else the
  first — with arguments generated from the tool's ``parameters`` schema (:func:`generate`).
  When the conversation ends with tool results and no tool is forced, it answers in text that
  quotes the results instead.
- ``response_format`` ``{"type": "json_schema"}``: a JSON object valid against the schema;
  ``{"type": "json_object"}``: a JSON object whose keys are the identifiers the prompt quotes
  (``'setup'``, ``"punchline"``), else ``{"answer": …}``.

Values come from the last user message where they appear there, typed defaults otherwise
(:func:`generate` says how). Everything here is pure and deterministic: the same request always
gets the same reply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from redpill_integrations.emulator.reply import Reply

__all__ = ["argument_fragments", "generate", "structured_reply"]

_MAX_DEPTH = 8
_MAX_ITEMS = 64  # a hostile minItems / minLength must not exhaust the emulator
_MAX_LENGTH = 10_000
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]\d)")
_QUOTED = re.compile(r"'([^'\n]+)'|\"([^\"\n]+)\"")
_PROPER = re.compile(r"(?<![\w'\"])[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*(?:,\s*[A-Z]{2}\b)?")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def message_text(message: Any) -> str:
    """The text of one chat message (string content, or the text parts of a content list)."""
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get("role") == "user":
            return message_text(m)
    return ""


def _sentence_start(text: str, index: int) -> bool:
    before = text[:index].rstrip()
    return not before or before[-1] in ".!?:"


class _Prompt:
    """The values a prompt offers, handed out in order so that successive fields differ."""

    def __init__(self, text: str, reserved: set[str]) -> None:
        self.text = text
        self._numbers = [m.group() for m in _NUMBER.finditer(text)]
        self._quoted = [
            a or b for a, b in _QUOTED.findall(text) if (a or b).lower() not in reserved
        ]
        bare = _QUOTED.sub(" ~ ", text)  # quoted words are not proper nouns too
        self._proper = [
            m.group() for m in _PROPER.finditer(bare) if not _sentence_start(bare, m.start())
        ]

    def named(self, name: str) -> str | None:
        """``name = value``, ``name: value`` or ``name is value`` in the prompt."""
        pattern = re.compile(
            rf"\b{re.escape(name)}\s*(?:=|:|\bis\b)\s*(?:'([^']*)'|\"([^\"]*)\"|([^\s,;]+))",
            re.IGNORECASE,
        )
        m = pattern.search(self.text)
        if m is None:
            return None
        value = next(g for g in m.groups() if g is not None)
        return value.rstrip(".!?") if m.group(3) is not None else value

    def number(self, *, integer: bool) -> float | None:
        for i, raw in enumerate(self._numbers):
            if integer and "." in raw:
                continue
            del self._numbers[i]
            return int(raw) if integer else float(raw)
        return None

    def string(self) -> str | None:
        for pool in (self._quoted, self._proper):
            if pool:
                return pool.pop(0)
        return None


def _resolve(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow ``$ref`` (``#/$defs/…``, ``#/definitions/…``) and merge ``allOf``."""
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < _MAX_DEPTH:
        ref = schema["$ref"]
        target: Any = root
        if isinstance(ref, str) and ref.startswith("#"):
            for part in ref[1:].split("/"):
                if part:
                    target = target.get(part, {}) if isinstance(target, Mapping) else {}
        else:
            target = {}
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
        seen += 1
    if not isinstance(schema, Mapping):
        return {}
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            sub = _resolve(part, root)
            merged["properties"] = {**_mapping(merged, "properties"), **_mapping(sub, "properties")}
            merged["required"] = sorted(_names(merged) | _names(sub))
            merged.update({k: v for k, v in sub.items() if k not in ("properties", "required")})
        return merged
    return schema


def _mapping(schema: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = schema.get(key)
    return value if isinstance(value, Mapping) else {}


def _names(schema: Mapping[str, Any]) -> set[str]:
    """The ``required`` property names (anything else in the list is ignored)."""
    value = schema.get("required")
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _type_of(schema: Mapping[str, Any]) -> str:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if isinstance(t, str):
        return t
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _coerce(raw: str, kind: str) -> Any:
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return None
    if kind == "boolean":
        return {"true": True, "yes": True, "false": False, "no": False}.get(raw.lower())
    return raw if kind == "string" else None


def _clamp(value: float, schema: Mapping[str, Any], *, integer: bool) -> float:
    step = 1 if integer else 1e-6
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        lo = schema["exclusiveMinimum"] + step
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        hi = schema["exclusiveMaximum"] - step
    if isinstance(lo, int | float) and value < lo:
        value = lo
    if isinstance(hi, int | float) and value > hi:
        value = hi
    return int(value) if integer else value


def _fit_string(value: str, schema: Mapping[str, Any]) -> str:
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if isinstance(hi, int):
        value = value[:hi]
    if isinstance(lo, int) and len(value) < lo:
        value = value + "x" * (min(lo, _MAX_LENGTH) - len(value))
    return value


def _value(schema: Any, root: Mapping[str, Any], prompt: _Prompt, name: str, depth: int) -> Any:
    if depth > 2 * _MAX_DEPTH:
        return None  # a schema that only recurses (arrays of itself) ends here
    s = _resolve(schema, root)
    if "const" in s:
        return s["const"]
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        lowered = prompt.text.lower()
        for option in enum:
            if isinstance(option, str) and re.search(rf"\b{re.escape(option.lower())}\b", lowered):
                return option
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = s.get(key)
        if isinstance(branches, list) and branches:
            usable = [b for b in branches if _resolve(b, root).get("type") != "null"]
            if len(usable) < len(branches) and not (name and prompt.named(name)):
                return None  # nullable and the prompt gives no value: what models send
            return _value((usable or branches)[0], root, prompt, name, depth)
    types = s.get("type")
    if isinstance(types, list) and "null" in types and not (name and prompt.named(name)):
        return None
    kind = _type_of(s)
    named = prompt.named(name) if name and kind not in ("object", "array") else None
    if named is not None and (coerced := _coerce(named, kind)) is not None:
        return _fit_string(coerced, s) if kind == "string" else coerced
    if kind == "object":
        return _object(s, root, prompt, depth)
    if kind == "array":
        return _array(s, root, prompt, name, depth)
    if "default" in s and s["default"] is not None:
        return s["default"]
    if kind in ("integer", "number"):
        found = prompt.number(integer=kind == "integer")
        return _clamp(0 if found is None else found, s, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    found_text = prompt.string()
    return _fit_string(found_text if found_text is not None else f"emulated {name or 'value'}", s)


def _object(s: Mapping[str, Any], root: Mapping[str, Any], prompt: _Prompt, depth: int) -> Any:
    props = s.get("properties")
    if not isinstance(props, Mapping) or depth >= _MAX_DEPTH:
        return {}
    required = _names(s)
    out: dict[str, Any] = {}
    for key, sub in props.items():
        if key in required or prompt.named(key) is not None:
            out[key] = _value(sub, root, prompt, key, depth + 1)
    return out


def _array(
    s: Mapping[str, Any], root: Mapping[str, Any], prompt: _Prompt, name: str, depth: int
) -> list[Any]:
    lo = s.get("minItems")
    hi = s.get("maxItems")
    count = min(lo, _MAX_ITEMS) if isinstance(lo, int) and lo > 1 else 1
    if isinstance(hi, int):
        count = min(count, hi)
    if depth >= _MAX_DEPTH // 2 and not (isinstance(lo, int) and lo > 0):
        count = 0  # recursive schemas end here
    item = s.get("items", {})
    return [_value(item, root, prompt, name, depth + 1) for _ in range(count)]


def generate(schema: Mapping[str, Any], prompt_text: str = "") -> Any:
    """A value valid against ``schema`` (JSON Schema as pydantic and OpenAI tools emit it).

    Handles ``type`` (also lists such as ``["string", "null"]``), ``properties``/``required``
    (optional properties appear only when the prompt names them: ``name = value``,
    ``name: value``, ``name is value``), ``items``/``minItems``/``maxItems``, ``enum``, ``const``,
    ``anyOf``/``oneOf`` (the first non-null branch; ``null`` for a nullable value the prompt does
    not name), ``allOf``, ``$ref`` into ``$defs`` or
    ``definitions``, ``default``, numeric bounds, string lengths and common ``format``\\ s.
    Values are taken from ``prompt_text`` where they appear: a named value first, then for numbers
    the prompt's numbers in order, for strings its quoted strings then its proper-noun phrases in
    order; otherwise typed defaults (``0`` within bounds, ``False``, ``"emulated <name>"``, the
    first enum member).
    """
    props = schema.get("properties")
    reserved = {k.lower() for k in props} if isinstance(props, Mapping) else set()
    return _value(schema, schema, _Prompt(prompt_text, reserved), "", 0)


def _tools(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return []
    out = []
    for t in tools:
        fn = t.get("function") if isinstance(t, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            out.append(fn)
    return out


def _forced(choice: Any, tools: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        return next((t for t in tools if t["name"] == name), None)
    return None


def _pick(tools: list[Mapping[str, Any]], prompt: str) -> Mapping[str, Any]:
    named = [t for t in tools if t["name"] in prompt]
    if named:
        return max(named, key=lambda t: len(t["name"]))
    return tools[0]


def _tool_results_reply(messages: list[Any]) -> Reply:
    names: dict[str, str] = {}
    for m in messages:
        if isinstance(m, Mapping) and m.get("role") == "assistant":
            calls = m.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                    names[str(call.get("id"))] = str(call["function"].get("name"))
    results = []
    for m in reversed(messages):
        if not (isinstance(m, Mapping) and m.get("role") == "tool"):
            break
        name = names.get(str(m.get("tool_call_id")), "the tool")
        results.append(f"{name} returned: {message_text(m)}")
    return Reply.text("According to the tools, " + "; ".join(reversed(results)))


def _json_object(prompt: str) -> dict[str, Any]:
    keys = []
    for a, b in _QUOTED.findall(prompt):
        key = a or b
        if _IDENTIFIER.match(key) and key not in keys:
            keys.append(key)
    if not keys:
        return {"answer": f"Emulated reply: {prompt[:200]}"}
    return {k: f"emulated {k}" for k in keys}


def structured_reply(request: Mapping[str, Any]) -> Reply | None:
    """The reply a chat request for structure gets, or ``None`` when it asks for none."""
    raw_messages = request.get("messages")
    messages = raw_messages if isinstance(raw_messages, list) else []
    prompt = _last_user_text(messages)
    after_tools = (
        bool(messages)
        and isinstance(messages[-1], Mapping)
        and (messages[-1].get("role") == "tool")
    )
    tools = _tools(request)
    choice = request.get("tool_choice")
    if tools and choice != "none":
        forced = _forced(choice, tools)
        if forced is not None or choice == "required" or not after_tools:
            fn = forced or _pick(tools, prompt)
            params = fn.get("parameters")
            args = generate(params, prompt) if isinstance(params, Mapping) else {}
            return Reply.tool_call(str(fn["name"]), args if isinstance(args, Mapping) else {})
    fmt = request.get("response_format")
    if isinstance(fmt, Mapping):
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            return Reply.json(generate(schema if isinstance(schema, Mapping) else {}, prompt))
        if fmt.get("type") == "json_object":
            return Reply.json(_json_object(prompt))
    if after_tools:
        return _tool_results_reply(messages)
    return None


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]+")


def argument_fragments(arguments: str) -> list[str]:
    """A tool call's JSON arguments split the way models stream them: a few tokens per delta."""
    tokens = _TOKEN.findall(arguments)
    if not tokens:
        return [""]
    pieces, current = [], ""
    for i, token in enumerate(tokens):
        current += token
        if i % 3 == 2 or len(current) >= 16:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces
