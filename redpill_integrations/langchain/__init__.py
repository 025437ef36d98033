"""LangChain integration: :class:`ChatRedpill` and :class:`RedpillCallbackHandler`.

Importing this module imports LangChain; the package root does not.
"""

from redpill_integrations.langchain._verification import EVENT_NAME, VERDICT_KEY
from redpill_integrations.langchain.callbacks import RedpillCallbackHandler
from redpill_integrations.langchain.chat_model import ChatRedpill

__all__ = ["EVENT_NAME", "VERDICT_KEY", "ChatRedpill", "RedpillCallbackHandler"]
