"""The framework-neutral core both adapters (``langchain/``, ``llama_index/``) are thin over.

* :mod:`.modes`: ``strict`` / ``annotate`` / ``off`` and what each does with a verdict;
* :mod:`.core`: one verified call or stream, from the strict pre-check to the enforced verdict;
* :mod:`.clients`: the verifier an adapter uses, and OpenAI SDK clients that ignore ``OPENAI_*``;
* :mod:`.unreadable`: :class:`ResponseUnreadable`, an answer that arrived but could not be read;
* :mod:`.live`: the live responses that let an abandoned stream close at once.

Imports neither LangChain nor LlamaIndex. Private: the adapters and the package root use it.
"""

from redpill_integrations._adapter.clients import openai_client, resolve_verifier
from redpill_integrations._adapter.core import (
    AsyncHost,
    AsyncRequestFields,
    AsyncStreamHost,
    Host,
    RequestFields,
    StreamHost,
    VerifiedCall,
    VerifiedCalls,
    arequest_fields,
    request_fields,
)
from redpill_integrations._adapter.live import LiveResponses
from redpill_integrations._adapter.modes import (
    MODES,
    VERDICT_KEY,
    VerificationMode,
    check_mode,
    enforce,
    model_not_tee,
)
from redpill_integrations._adapter.unreadable import ResponseUnreadable

__all__ = [
    "MODES",
    "VERDICT_KEY",
    "AsyncHost",
    "AsyncRequestFields",
    "AsyncStreamHost",
    "Host",
    "LiveResponses",
    "RequestFields",
    "ResponseUnreadable",
    "StreamHost",
    "VerificationMode",
    "VerifiedCall",
    "VerifiedCalls",
    "arequest_fields",
    "check_mode",
    "enforce",
    "model_not_tee",
    "openai_client",
    "request_fields",
    "resolve_verifier",
]
