"""The verifier an adapter uses, and OpenAI SDK clients that read no ``OPENAI_*`` settings.

:func:`resolve_verifier` is the one place both adapters build (or accept) their verifier:

* ``verifier=`` and ``policy=``/``trust=``/``receipt_store=`` are exclusive (a shared verifier
  carries its own);
* a shared verifier must serve the adapter's base URL, or nothing would be captured and every
  call would end ``MALFORMED_RESPONSE``;
* otherwise a verifier is built from the settings (trust: ``TrustAnchors.from_env()``).

:func:`openai_client` is the one way both adapters build SDK clients. The OpenAI SDK fills every
argument left ``None`` from the environment (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``,
``OPENAI_ADMIN_KEY``, ``OPENAI_WEBHOOK_SECRET``) and merges ``OPENAI_CUSTOM_HEADERS`` into the
default headers. None of those belong in a request to Redpill: the attributes are reset after
construction, and every header named in ``OPENAI_CUSTOM_HEADERS`` is removed through the SDK's
public ``Omit`` marker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import openai
from pydantic import SecretStr

from redpill_integrations._adapter.modes import VerificationMode
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.wire import RedpillVerifier

__all__ = ["openai_client", "resolve_verifier"]

_SDK_ENV_HEADERS = "OPENAI_CUSTOM_HEADERS"

_C = TypeVar("_C", openai.OpenAI, openai.AsyncOpenAI)


def resolve_verifier(
    *,
    mode: VerificationMode,
    base_url: str,
    api_key: str | SecretStr | None,
    verifier: RedpillVerifier | None,
    policy: VerificationPolicy | None,
    trust: TrustAnchors | None,
    receipt_store: ReceiptStore | None,
) -> RedpillVerifier | None:
    """The verifier for an adapter in ``mode`` (``None`` when ``"off"``); see the module
    docstring. Raises :class:`ConfigurationError` for settings that cannot work together."""
    given = [
        name
        for name, value in (("policy", policy), ("trust", trust), ("receipt_store", receipt_store))
        if value is not None
    ]
    if verifier is not None and given:
        raise ConfigurationError(
            f"pass either verifier= or {', '.join(given)}=, not both: the verifier already "
            "carries its own"
        )
    if mode == "off":
        return None
    if verifier is not None:
        if verifier.base_url != base_url.rstrip("/"):
            raise ConfigurationError(
                "the verifier's base_url differs from the model's: nothing would be captured"
            )
        return verifier
    return RedpillVerifier(
        base_url=base_url,
        api_key=api_key,
        policy=policy,
        trust=trust if trust is not None else TrustAnchors.from_env(),
        receipt_store=receipt_store,
    )


def openai_client(cls: type[_C], *, default_headers: Mapping[str, str] | None, **params: Any) -> _C:
    """``cls(**params)`` (``openai.OpenAI`` or ``AsyncOpenAI``) with nothing from ``OPENAI_*``."""
    headers: dict[str, str | openai.Omit] = {name: openai.Omit() for name in _env_header_names()}
    headers.update(default_headers or {})
    # The SDK merges headers with its public ``Omit`` marker removing a name (``_merge_mappings``),
    # though ``default_headers`` is typed ``Mapping[str, str]``.
    client = cls(default_headers=cast("Mapping[str, str]", headers), **params)
    client.organization = None
    client.project = None
    client.admin_api_key = None
    client.webhook_secret = None
    return client


def _env_header_names() -> list[str]:
    """The headers the OpenAI SDK would add from ``OPENAI_CUSTOM_HEADERS`` (to remove them)."""
    raw = os.environ.get(_SDK_ENV_HEADERS, "")
    return [line.split(":", 1)[0].strip() for line in raw.split("\n") if ":" in line]
