"""LlamaIndex integration: the :class:`Redpill` LLM and :class:`RedpillVerificationEvent`.

Importing this package imports ``llama_index`` (install the ``llama-index`` extra); the package
root ``redpill_integrations`` never does.
"""

from redpill_integrations.llama_index._hosts import VERIFICATION_KEY
from redpill_integrations.llama_index.events import RedpillVerificationEvent
from redpill_integrations.llama_index.llm import Redpill

__all__ = ["VERIFICATION_KEY", "Redpill", "RedpillVerificationEvent"]
