"""Where the CLI sends requests, and with which key.

A trust file says which roots to trust; it never picks where the real API key goes. Someone who
can hand you a trust file (``REDPILL_TRUST_FILE``, ``--trust``) must not be able to collect your
``REDPILL_API_KEY``. So the base URL comes from, in order:

1. ``--base-url``, then ``REDPILL_BASE_URL``: the user's explicit choice;
2. the trust file's ``base_url`` (an emulator writes its own), but only if it is a loopback URL
   *and* no real key is in play: ``REDPILL_API_KEY`` is unset or is the emulator's placeholder key;
3. otherwise :data:`~redpill_integrations.policy.DEFAULT_BASE_URL`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from redpill_integrations.policy import DEFAULT_BASE_URL, TrustAnchors

__all__ = ["EMULATOR_API_KEY", "Destination", "is_loopback_url", "resolve_destination"]

#: The emulator's placeholder key (``Emulator.api_key``; the emulator accepts any bearer token).
#: Spelled out here because the CLI must not import the emulator (an optional extra).
EMULATOR_API_KEY = "sk-redpill-emulator"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Destination:
    """The base URL to call and the key to send there (``None``: no key available)."""

    base_url: str
    api_key: str | None = dataclasses.field(repr=False)
    #: the trust file's ``base_url`` when it named one and the rules above passed it over
    ignored_trust_base_url: str | None = None


def is_loopback_url(url: str) -> bool:
    """True for ``http(s)://`` URLs whose host is ``localhost`` or a loopback IP address."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_destination(
    *, base_url_flag: str | None, trust: TrustAnchors, env: Mapping[str, str]
) -> Destination:
    """Apply the rules in this module's docstring. ``env`` is the process environment."""
    real_key = env.get("REDPILL_API_KEY") or None
    placeholder = None if trust.is_production else EMULATOR_API_KEY
    explicit = base_url_flag or env.get("REDPILL_BASE_URL") or None
    if explicit:
        return Destination(base_url=explicit, api_key=real_key or placeholder)
    if trust.base_url is not None:
        no_real_key = real_key is None or real_key == EMULATOR_API_KEY
        if is_loopback_url(trust.base_url) and no_real_key:
            return Destination(base_url=trust.base_url, api_key=real_key or placeholder)
        return Destination(
            base_url=DEFAULT_BASE_URL,
            api_key=real_key or placeholder,
            ignored_trust_base_url=trust.base_url,
        )
    return Destination(base_url=DEFAULT_BASE_URL, api_key=real_key or placeholder)
