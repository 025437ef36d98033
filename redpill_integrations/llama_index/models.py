"""What the LLM knows about Redpill's models: which run in a TEE, and their context windows."""

from __future__ import annotations

from redpill_integrations.errors import ConfigurationError
from redpill_integrations.results import Reason

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "TEE_MODEL_PREFIX",
    "context_window_for",
    "is_tee_model",
    "not_tee_error",
]

#: Models under this prefix run inside GPU TEEs and have signed, attested responses (SPEC §1).
TEE_MODEL_PREFIX = "phala/"

#: For a model missing from the table: smaller than any listed, larger than LlamaIndex's 3900.
DEFAULT_CONTEXT_WINDOW = 32_768

_CONTEXT_WINDOWS: dict[str, int] = {
    "phala/deepseek-chat-v3-0324": 163_840,
    "phala/deepseek-v3.2": 163_840,
    "phala/deepseek-r1-70b": 131_072,
    "phala/gpt-oss-120b": 131_072,
    "phala/gpt-oss-20b": 131_072,
    "phala/llama-3.3-70b-instruct": 131_072,
    "phala/gemma-3-27b-it": 131_072,
    "phala/qwen-2.5-7b-instruct": 32_768,
}


def is_tee_model(model: str) -> bool:
    return model.startswith(TEE_MODEL_PREFIX)


def context_window_for(model: str) -> int:
    return _CONTEXT_WINDOWS.get(model, DEFAULT_CONTEXT_WINDOW)


def not_tee_error(model: str) -> ConfigurationError:
    """The error for a strict call to a model whose responses cannot be verified."""
    error = ConfigurationError(
        f"model {model!r} does not run in a TEE: only {TEE_MODEL_PREFIX}… models sign their "
        "responses, so strict verification would fail every call (MODEL_NOT_TEE). Use a "
        f'{TEE_MODEL_PREFIX}… model, or pass verification="off" to call it without '
        'verification (verification="annotate" calls it and records it as unverifiable).'
    )
    error.reason = Reason.MODEL_NOT_TEE
    return error
