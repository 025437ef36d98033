"""OpenAI SDK clients for ChatRedpill that never read ``OPENAI_*`` settings from the environment.

The OpenAI SDK fills every argument left ``None`` from the environment (``OPENAI_ORG_ID``,
``OPENAI_PROJECT_ID``, ``OPENAI_ADMIN_KEY``, ``OPENAI_WEBHOOK_SECRET``,
``OPENAI_CUSTOM_HEADERS``, …). None of those belong in a request to Redpill, so after construction
the clients are reset to exactly what ChatRedpill was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import openai

__all__ = ["build_clients"]


def _scrub(client: openai.OpenAI | openai.AsyncOpenAI, headers: Mapping[str, str] | None) -> None:
    client.organization = None
    client.project = None
    client.webhook_secret = None
    client.admin_api_key = None
    # OPENAI_CUSTOM_HEADERS is merged into the custom headers at construction: keep only ours.
    client._custom_headers = dict(headers or {})


def build_clients(
    *,
    api_key: str,
    base_url: str,
    timeout: Any,
    max_retries: int | None,
    default_headers: Mapping[str, str] | None,
    default_query: Mapping[str, object] | None,
    http_client: httpx.Client | None,
    http_async_client: httpx.AsyncClient | None,
) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    params: dict[str, Any] = {
        "api_key": api_key,
        "base_url": base_url,
        "default_headers": default_headers,
        "default_query": default_query,
    }
    if timeout is not None:
        params["timeout"] = timeout
    if max_retries is not None:
        params["max_retries"] = max_retries
    sync_client = openai.OpenAI(**params, http_client=http_client)
    async_client = openai.AsyncOpenAI(**params, http_client=http_async_client)
    _scrub(sync_client, default_headers)
    _scrub(async_client, default_headers)
    return sync_client, async_client
