"""Verified provenance for LangChain and LlamaIndex calls to Redpill's TEE-hosted models.

The package root imports neither LangChain nor LlamaIndex: use ``redpill_integrations.langchain``
and ``redpill_integrations.llama_index``. Its names are loaded on first use, so that importing the
pure core (``redpill_integrations.verify``, ``.receipts``) or the emulator does not load the I/O
stack (httpx, the OpenAI SDK) that ``RedpillVerifier`` and ``ResponseUnreadable`` need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from redpill_integrations._version import __version__

if TYPE_CHECKING:
    from redpill_integrations._adapter.unreadable import ResponseUnreadable
    from redpill_integrations.errors import ConfigurationError, RedpillError, VerificationFailed
    from redpill_integrations.policy import TrustAnchors, VerificationPolicy
    from redpill_integrations.receipts import Receipt, ReceiptStore, reverify
    from redpill_integrations.results import Reason, Status, VerificationResult
    from redpill_integrations.wire import RedpillVerifier

__all__ = [
    "ConfigurationError",
    "Reason",
    "Receipt",
    "ReceiptStore",
    "RedpillError",
    "RedpillVerifier",
    "ResponseUnreadable",
    "Status",
    "TrustAnchors",
    "VerificationFailed",
    "VerificationPolicy",
    "VerificationResult",
    "__version__",
    "reverify",
]

_HOMES = {
    "ConfigurationError": "redpill_integrations.errors",
    "Reason": "redpill_integrations.results",
    "Receipt": "redpill_integrations.receipts",
    "ReceiptStore": "redpill_integrations.receipts",
    "RedpillError": "redpill_integrations.errors",
    "RedpillVerifier": "redpill_integrations.wire",
    "ResponseUnreadable": "redpill_integrations._adapter.unreadable",
    "Status": "redpill_integrations.results",
    "TrustAnchors": "redpill_integrations.policy",
    "VerificationFailed": "redpill_integrations.errors",
    "VerificationPolicy": "redpill_integrations.policy",
    "VerificationResult": "redpill_integrations.results",
    "reverify": "redpill_integrations.receipts",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'redpill_integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
