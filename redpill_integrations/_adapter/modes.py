"""Verification modes: what each mode does with a verdict, for both framework adapters.

Framework-neutral (imports neither LangChain nor LlamaIndex). Which models are verifiable is the
verifier's decision (``RedpillVerifier.precheck``); what each mode does with a verdict is here:

* ``strict``: a verdict that is not ``verified`` raises :class:`VerificationFailed`, which carries
  the response the caller would have received (nothing is lost);
* ``annotate``: the verdict is attached and a warning is logged;
* ``off``: no capture, no verdict.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from redpill_integrations.errors import ConfigurationError, VerificationFailed
from redpill_integrations.policy import TEE_MODEL_PREFIXES
from redpill_integrations.results import Reason, VerificationResult

__all__ = [
    "MODES",
    "VERDICT_KEY",
    "VerificationMode",
    "check_mode",
    "enforce",
    "model_not_tee",
]

logger = logging.getLogger("redpill_integrations")

VerificationMode = Literal["strict", "annotate", "off"]
MODES: tuple[VerificationMode, ...] = ("strict", "annotate", "off")

#: Where every response carries its verdict (LangChain ``response_metadata``, LlamaIndex
#: ``additional_kwargs``), and the name of the LangChain custom event.
VERDICT_KEY = "redpill_verification"


def check_mode(value: object) -> VerificationMode:
    """``value`` as a mode, or a :class:`ConfigurationError` naming the allowed ones."""
    for mode in MODES:
        if value == mode:
            return mode
    raise ConfigurationError(f"verification must be one of {', '.join(MODES)}; got {value!r}")


def model_not_tee(
    model: str | None, prefixes: tuple[str, ...] = TEE_MODEL_PREFIXES, *, listed: bool = False
) -> ConfigurationError:
    """The strict-mode error for a model whose answers cannot be verified; names the way out.

    ``listed``: the ACI gateway's model listing says ``is_tee: false`` (else: the legacy
    protocol's TEE-prefix rule refused it)."""
    if listed:
        why = (
            f"the gateway lists model {model!r} with is_tee: false (it is not served from a "
            "TEE), so strict verification would fail every call"
        )
    else:
        names = ", ".join(f"{p}…" for p in prefixes)
        why = (
            f"model {model!r} does not run in a TEE (only {names} models sign their "
            "responses), so strict verification would fail every call"
        )
    error = ConfigurationError(
        f'MODEL_NOT_TEE: {why}. Use a TEE model, or pass verification="off" to call it '
        'without verification (verification="annotate" calls it and records the verdict).'
    )
    error.reason = Reason.MODEL_NOT_TEE
    return error


def enforce(
    mode: VerificationMode, verdict: VerificationResult, response: Any, *, context: str = ""
) -> None:
    """Apply ``mode`` to a verdict already attached to ``response``.

    strict: raise :class:`VerificationFailed` carrying ``response``; annotate: log a warning;
    off, or a ``verified`` verdict: nothing.
    """
    if verdict.verified or mode == "off":
        return
    if mode == "strict":
        raise VerificationFailed(verdict, response=response)
    logger.warning(
        "Redpill verification %s for chat %s (model %s)%s: %s%s",
        verdict.status.value,
        verdict.chat_id or "(no chat id)",
        verdict.model,
        context,
        ", ".join(r.value for r in verdict.reasons),
        " (cached)" if verdict.cached else "",
    )
