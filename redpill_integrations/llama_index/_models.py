"""What the LLM knows about Redpill's models: their context windows (which models are verifiable
is the verifier's decision, ``RedpillVerifier.precheck``)."""

from __future__ import annotations

__all__ = ["DEFAULT_CONTEXT_WINDOW", "context_window_for"]

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


def context_window_for(model: str) -> int:
    return _CONTEXT_WINDOWS.get(model, DEFAULT_CONTEXT_WINDOW)
