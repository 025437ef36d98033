"""Which model answered (legacy protocol): read from the signed response, compared with the request.

The response body is covered by the signature, so the ``model`` it names is the node's own word on
what answered. The gateway rewrites the requested alias before forwarding (``phala/<name>`` becomes
``<org>/<name>``), so two names are *the same model* when they are equal after dropping everything
up to the last ``/``, ignoring case and every character but letters and digits:
``phala/deepseek-chat-v3-0324`` and ``deepseek/deepseek-chat-v3-0324`` agree, as do
``phala/qwen-2.5-7b-instruct`` and ``qwen/qwen2.5-7b-instruct``; ``phala/qwen-2.5-7b-instruct``
and ``phala/deepseek-chat-v3-0324`` do not (``MODEL_MISMATCH``).

The first field of a 3-part signed text is the proxy's own configured name, which the protocol says
may differ from the alias the client sent (``Qwen/Qwen2.5-7B-Instruct`` for
``phala/qwen-2.5-7b-instruct``): it is reported as ``served_model``, not compared
(docs/code-identity.md, "served model").
"""

from __future__ import annotations

from redpill_integrations.errors import EvidenceError
from redpill_integrations.verify.encoding import loads_strict

__all__ = ["model_key", "response_models", "same_model"]


def model_key(name: str) -> str:
    """The part of a model name that aliases keep: after the last ``/``, lower-case letters and
    digits only."""
    return "".join(ch for ch in name.rsplit("/", 1)[-1].lower() if ch.isalnum())


def same_model(requested: str, served: str) -> bool:
    return bool(model_key(served)) and model_key(requested) == model_key(served)


def response_models(body: bytes, *, streamed: bool) -> tuple[str, ...]:
    """The ``model`` the response names: the body's, or a stream's first event that names one.

    Every event of a stream comes from the same signer and repeats the model, so the first is
    read (the verdict stays cheap on long streams). Unreadable JSON names nothing: the hashes, not
    this, decide whether the body is genuine.
    """
    found: dict[str, None] = {}
    if not streamed:
        _collect(body, found)
        return tuple(found)
    start = 0
    while start < len(body):
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        line, start = body[start:end].strip(), end + 1
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data and data != b"[DONE]":
                _collect(data, found)
                if found:
                    break
    return tuple(found)


def _collect(data: bytes, found: dict[str, None]) -> None:
    try:
        value = loads_strict(data, what="response body")
    except EvidenceError:  # malformed, too deep, duplicate keys
        return
    if isinstance(value, dict) and isinstance(value.get("model"), str):
        found[value["model"]] = None
