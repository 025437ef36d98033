"""The ``redpill_verification`` custom event, one per model call.

With a run manager (``invoke``/``batch``/``ainvoke``/…, and streams driven through
``_generate_with_cache``) the event is attached to the model's own run. ``stream``/``astream`` do
not hand the run manager to the model, so there the event goes to the enclosing run (a chain, a
LangGraph node, ``astream_events``) when there is one, and is skipped otherwise: the verdict is
still in the last chunk and in ``on_llm_end``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event

from redpill_integrations.langchain._verification import EVENT_NAME
from redpill_integrations.results import VerificationResult

__all__ = ["aemit", "emit"]


def _same_run(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun,
) -> dict[str, Any]:
    """Arguments of a callback manager reaching the run's handlers, tags and metadata."""
    return {
        "handlers": run_manager.handlers,
        "inheritable_handlers": run_manager.inheritable_handlers,
        "parent_run_id": run_manager.parent_run_id,
        "tags": run_manager.tags,
        "inheritable_tags": run_manager.inheritable_tags,
        "metadata": run_manager.metadata,
        "inheritable_metadata": run_manager.inheritable_metadata,
    }


def emit(run_manager: CallbackManagerForLLMRun | None, verdict: VerificationResult) -> None:
    if run_manager is not None and not run_manager.handlers:
        return  # nobody listens on this run (LangChain drops the event): skip building it
    data = verdict.to_dict()
    if run_manager is None:
        try:
            dispatch_custom_event(EVENT_NAME, data)
        except RuntimeError:  # no enclosing run: nobody to tell
            pass
        return
    CallbackManager(**_same_run(run_manager)).on_custom_event(
        EVENT_NAME, data, run_id=run_manager.run_id
    )


async def aemit(
    run_manager: AsyncCallbackManagerForLLMRun | None, verdict: VerificationResult
) -> None:
    if run_manager is not None and not run_manager.handlers:
        return
    data = verdict.to_dict()
    if run_manager is None:
        try:
            await adispatch_custom_event(EVENT_NAME, data)
        except RuntimeError:
            pass
        return
    await AsyncCallbackManager(**_same_run(run_manager)).on_custom_event(
        EVENT_NAME, data, run_id=run_manager.run_id
    )
