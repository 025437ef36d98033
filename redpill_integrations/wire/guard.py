"""A response hook of the capturing clients: ``response.json()`` refuses JSON nested too deeply.

The OpenAI SDK parses a chat body with ``response.json()``. Nested deeply enough, that exhausts the
recursion limit (``RecursionError``); when another package has raised the limit (eth-account's
py_ecc sets 100 000) it overflows the C stack and kills the process. Refused here first, the SDK
sees a ``ValueError`` instead, which the adapters turn into ``ResponseUnreadable`` (one receipt).
The check reuses the core's depth guard, at C speed for ordinary bodies.
"""

from __future__ import annotations

from typing import Any

import httpx

from redpill_integrations.verify.encoding import MAX_JSON_DEPTH, too_deep

__all__ = ["aguard_json", "guard_json"]


def guard_json(response: httpx.Response) -> None:
    parse = response.json

    def guarded(**kwargs: Any) -> Any:
        if too_deep(response.content):
            raise ValueError(f"the response nests deeper than {MAX_JSON_DEPTH} levels")
        return parse(**kwargs)

    response.json = guarded  # type: ignore[method-assign]


async def aguard_json(response: httpx.Response) -> None:
    guard_json(response)
