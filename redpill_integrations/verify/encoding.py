"""Strict decoding helpers shared by the core: JSON without duplicate keys, hex, base64, sha256.

Every helper raises our own :class:`~redpill_integrations.errors.EvidenceError` subclasses, never
a bare ``ValueError``/``KeyError``; ``what`` names the field in messages (never its value, which
can be huge or private).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from itertools import accumulate
from typing import Any

from redpill_integrations.errors import DuplicateJSONKey, MalformedEvidence

__all__ = [
    "as_dict",
    "as_str",
    "decode_hex",
    "decode_hex_or_base64",
    "loads_or_none",
    "loads_strict",
    "norm_hex",
    "sha256_hex",
    "too_deep",
]

_HEX = re.compile(r"[0-9a-fA-F]*")
#: Deepest JSON nesting accepted. Real evidence nests < 10 levels; the limit exists because
#: importing eth_account (py_ecc) raises the interpreter's recursion limit to 100 000, at which
#: point CPython's C JSON scanner can overflow the C stack on hostile input instead of raising.
MAX_JSON_DEPTH = 64
#: Most brackets (outside strings) accepted in one JSON document; real evidence has < 10 000.
MAX_JSON_BRACKETS = 1_000_000
_STRINGS = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateJSONKey(f"duplicate JSON key {key[:64]!r}")
        out[key] = value
    return out


def loads_strict(data: bytes | str, *, what: str, max_bytes: int | None = None) -> Any:
    """``json.loads`` that rejects duplicate keys and turns every parser failure into ours."""
    if max_bytes is not None and len(data) > max_bytes:
        raise MalformedEvidence(f"{what} is larger than {max_bytes} bytes")
    if too_deep(data):
        raise MalformedEvidence(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates)
    except DuplicateJSONKey:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError) as exc:
        # ValueError covers JSONDecodeError and Python's int-digits limit.
        raise MalformedEvidence(f"{what} is not valid JSON") from exc


def loads_or_none(data: bytes | str) -> Any:
    """Parse a body we only peek into (an id, a model, a flag): ``None`` for anything unusable,
    including nesting deep enough to exhaust the stack (another package may have raised the
    recursion limit)."""
    if too_deep(data):
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def too_deep(data: bytes | str) -> bool:
    """True when ``data`` nests deeper than :data:`MAX_JSON_DEPTH` (or has absurdly many brackets).

    At C speed: drop escaped backslashes and quotes, keep only ``[]{}"``, drop strings, then take
    the maximum running depth of the remaining brackets.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    skeleton = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    skeleton = _STRINGS.sub(b"", skeleton).replace(b'"', b"")
    if len(skeleton) > MAX_JSON_BRACKETS or _max_depth(skeleton[:4096]) > MAX_JSON_DEPTH:
        return True  # (a prefix's depth is a lower bound: deep traps are caught at once)
    return _max_depth(skeleton) > MAX_JSON_DEPTH


def _max_depth(brackets: bytes) -> int:
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def as_dict(value: Any, *, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what} is not a JSON object")
    return value


def as_str(value: Any, *, what: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise MalformedEvidence(f"{what} is not a string")
    if len(value) > max_len:
        raise MalformedEvidence(f"{what} is longer than {max_len} characters")
    return value


def norm_hex(
    value: Any, *, what: str, nbytes: int | tuple[int, ...] | None = None, max_len: int = 1 << 20
) -> str:
    """Validate a hex string (optional ``0x``) and return it lower-case without the prefix."""
    text = as_str(value, what=what, max_len=max_len + 2)
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if len(text) % 2 or not _HEX.fullmatch(text):
        raise MalformedEvidence(f"{what} is not hex")
    if nbytes is not None:
        allowed = (nbytes,) if isinstance(nbytes, int) else nbytes
        if len(text) // 2 not in allowed:
            raise MalformedEvidence(f"{what} has {len(text) // 2} bytes, expected {allowed}")
    return text.lower()


def decode_hex(
    value: Any, *, what: str, nbytes: int | tuple[int, ...] | None = None, max_len: int = 1 << 20
) -> bytes:
    return bytes.fromhex(norm_hex(value, what=what, nbytes=nbytes, max_len=max_len))


def decode_hex_or_base64(value: Any, *, what: str, max_len: int) -> bytes:
    """Hex (current servers) or standard base64 (old servers), nothing else."""
    text = as_str(value, what=what, max_len=max_len)
    stripped = text[2:] if text[:2] in ("0x", "0X") else text
    if len(stripped) % 2 == 0 and _HEX.fullmatch(stripped):
        return bytes.fromhex(stripped)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvidence(f"{what} is neither hex nor base64") from exc
