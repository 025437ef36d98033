"""Canonical JSON as ACI hashes and signs it: the ACI subset of RFC 8785 (docs/protocol-aci.md).

``jcs(value)`` gives the bytes the gateway hashed: member names sorted, no whitespace, strings as
raw UTF-8 (never ``\\u``-escaped beyond the control characters), integers verbatim.

Where the ACI subset and the ``rfc8785`` package differ, and what this module does about it:

* **Floats**: ACI rejects them (``FloatNotAllowed`` in the gateway); ``rfc8785`` accepts them. We
  reject every float before encoding (:class:`NotCanonical`).
* **Integers above 2**53**: ACI writes them verbatim (a keyset's ``not_after`` may be u64::MAX);
  ``rfc8785`` raises ``IntegerDomainError``. We then encode with :func:`json.dumps`
  (``sort_keys``, compact separators, ``ensure_ascii=False``), which gives RFC 8785's bytes for
  every value this module accepts: ASCII member names sort the same in UTF-16 and code points, and
  its string escapes are RFC 8785's (short escapes, lower-case ``\\u00xx`` for other controls).
* **Non-ASCII member names**: ACI rejects them (generation B); ``rfc8785`` sorts them by UTF-16
  code units. We reject them.

Everything else goes through ``rfc8785.dumps``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from redpill_integrations.errors import MalformedEvidence

__all__ = ["NotCanonical", "jcs", "jcs_sha256"]

#: Deepest nesting :func:`jcs` walks; parsed documents are already capped shallower.
_MAX_DEPTH = 64


class NotCanonical(MalformedEvidence):
    """A value outside the ACI subset: a float, a non-ASCII or non-string member name, …"""


def jcs(value: Any) -> bytes:
    """The canonical bytes of ``value`` (JSON-like: dict, list, str, int, bool, None).

    Raises :class:`NotCanonical` for anything outside the ACI subset.
    """
    _check(value, 0)
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        # The one case the package refuses and ACI allows (module docstring).
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError) as exc:
        raise NotCanonical(f"value cannot be canonicalized: {str(exc)[:120]}") from exc


def jcs_sha256(value: Any) -> str:
    """``"sha256:" + hex(sha256(jcs(value)))``, the form ACI digests take."""
    return "sha256:" + hashlib.sha256(jcs(value)).hexdigest()


def _check(value: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise NotCanonical("value nests too deeply")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        raise NotCanonical("floats are not allowed in ACI canonical JSON")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise NotCanonical("string is not valid Unicode (lone surrogate)") from exc
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise NotCanonical("member names must be ASCII strings")
            _check(item, depth + 1)
        return
    raise NotCanonical(f"{type(value).__name__} is not a JSON value")
