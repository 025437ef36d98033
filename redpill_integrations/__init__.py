"""Verified provenance for LangChain and LlamaIndex calls to Redpill's TEE-hosted models.

The package root imports neither LangChain nor LlamaIndex: use ``redpill_integrations.langchain``
and ``redpill_integrations.llama_index``.
"""

from redpill_integrations._version import __version__
from redpill_integrations.errors import (
    ConfigurationError,
    RedpillError,
    ResponseUnreadable,
    VerificationFailed,
)
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
