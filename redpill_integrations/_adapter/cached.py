"""A verdict for an answer served from a framework cache: re-derived, never copied.

Whoever can write a LangChain cache (a shared Redis or SQLite cache) can write any message with
any verdict in its metadata. So the stored verdict is only a pointer: its ``receipt_id`` is looked
up in the verifier's own receipt store and the receipt re-verified offline under the verifier's
policy and trust anchors (:func:`redpill_integrations.receipts.reverify`), and the cached text
must be the text of the response that receipt holds. Anything less is ``unverifiable`` /
``CHECK_NOT_RUN`` ("cached verdict not re-verified: …"); a cached text other than the receipt's
is ``failed`` / ``RESPONSE_HASH_MISMATCH``. Every such verdict is marked ``cached=True``.

Framework-neutral: the adapters pass the stored verdict (or None) and the cached message text.
"""

from __future__ import annotations

import json
from typing import Any

from redpill_integrations.receipts import Receipt, reverify
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import RedpillVerifier

__all__ = ["rederive_cached"]

NOT_REVERIFIED = "cached verdict not re-verified"


def rederive_cached(
    stored: VerificationResult | None,
    text: str | None,
    *,
    index: int,
    verifier: RedpillVerifier,
) -> VerificationResult:
    """The verdict for cached generation ``index`` whose message text is ``text`` (see above)."""
    if stored is None:
        return _not_reverified("the cached answer carries no verdict", stored)
    store = verifier.receipt_store
    if store is None:
        return _not_reverified("no receipt store to re-verify it from", stored)
    if not stored.receipt_id:
        return _not_reverified("the cached verdict names no receipt", stored)
    receipt = store.get(stored.receipt_id)
    if receipt is None:
        return _not_reverified("its receipt is not in the store", stored)
    held = _receipt_text(receipt, index)
    if text is None or held is None:
        return _not_reverified("the cached text cannot be compared with its receipt", stored)
    result = reverify(receipt, policy=verifier.policy, trust=verifier.trust)
    if held != text:
        return VerificationResult.build(
            checks=dict(result.checks),
            reasons=(Reason.RESPONSE_HASH_MISMATCH,),
            chat_id=receipt.chat_id,
            model=receipt.model,
            receipt_id=receipt.receipt_id,
            cached=True,
            detail="the cached answer is not the response its receipt holds",
        )
    return result.with_updates(cached=True, receipt_id=receipt.receipt_id)


def _not_reverified(why: str, stored: VerificationResult | None) -> VerificationResult:
    return VerificationResult.unverifiable(
        Reason.CHECK_NOT_RUN,
        chat_id=stored.chat_id if stored else None,
        model=stored.model if stored else None,
        cached=True,
        detail=f"{NOT_REVERIFIED}: {why}",
    )


def _receipt_text(receipt: Receipt, index: int) -> str | None:
    """The assistant text of choice ``index`` in the receipt's response body, or None."""
    body = receipt.response_body
    if body is None:
        return None
    try:
        if receipt.streamed:
            parts: list[str] = []
            for line in body.split(b"\n"):
                data = line.removeprefix(b"data:").strip() if line.startswith(b"data:") else b""
                if not data or data == b"[DONE]":
                    continue
                for choice in json.loads(data).get("choices") or []:
                    if choice.get("index", 0) == index:
                        parts.append((choice.get("delta") or {}).get("content") or "")
            return "".join(parts)
        choices: list[Any] = json.loads(body).get("choices") or []
        for choice in choices:
            if choice.get("index", 0) == index:
                return str((choice.get("message") or {}).get("content") or "")
    except (ValueError, AttributeError, TypeError, RecursionError):
        return None
    return None
