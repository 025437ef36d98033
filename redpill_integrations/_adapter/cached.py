"""A verdict for an answer served from a framework cache: re-derived, never copied.

Whoever can write a LangChain cache (a shared Redis or SQLite cache) can write any message with
any verdict in its metadata. So the stored verdict is only a pointer: its ``receipt_id`` is looked
up in the verifier's own receipt store and the receipt re-verified offline under the verifier's
policy and trust anchors (:func:`redpill_integrations.receipts.reverify`), and the cached answer
(its text and its tool calls, name and parsed arguments) must be the answer of the response that
receipt holds. Anything less is ``unverifiable`` / ``CHECK_NOT_RUN`` ("cached verdict not
re-verified: …"); a cached answer other than the receipt's is ``failed`` /
``RESPONSE_HASH_MISMATCH``. Every such verdict is marked ``cached=True``.

Framework-neutral: the adapters pass the stored verdict (or None) and the cached answer.
"""

from __future__ import annotations

import json
from typing import Any

from redpill_integrations.receipts import Receipt, reverify
from redpill_integrations.results import Reason, VerificationResult
from redpill_integrations.wire import RedpillVerifier

__all__ = ["rederive_cached"]

NOT_REVERIFIED = "cached verdict not re-verified"


#: What a cached generation says was answered: its text and its tool calls as ``(name, arguments)``
#: with the arguments parsed (``None``: the adapter could not say).
CachedAnswer = tuple[str | None, list[tuple[str, Any]] | None]


def rederive_cached(
    stored: VerificationResult | None,
    answer: CachedAnswer,
    *,
    index: int,
    verifier: RedpillVerifier,
) -> VerificationResult:
    """The verdict for cached generation ``index`` whose answer is ``answer`` (see above)."""
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
    held = _receipt_answer(receipt, index)
    if held is None or answer[0] is None or answer[1] is None:
        return _not_reverified("the cached answer cannot be compared with its receipt", stored)
    result = reverify(receipt, policy=verifier.policy, trust=verifier.trust)
    if held != answer:
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


def _receipt_answer(receipt: Receipt, index: int) -> CachedAnswer | None:
    """Choice ``index`` of the receipt's response body: its text and parsed tool calls, or None."""
    body = receipt.response_body
    if body is None:
        return None
    try:
        if receipt.streamed:
            return _streamed_answer(body, index)
        choices: list[Any] = json.loads(body).get("choices") or []
        for choice in choices:
            if choice.get("index", 0) == index:
                message = choice.get("message") or {}
                calls = [
                    (c["function"]["name"], c["function"].get("arguments") or "")
                    for c in message.get("tool_calls") or []
                ]
                return str(message.get("content") or ""), _parsed(calls)
    except (ValueError, AttributeError, TypeError, KeyError, RecursionError):
        return None
    return None


def _streamed_answer(body: bytes, index: int) -> CachedAnswer:
    parts: list[str] = []
    calls: dict[int, list[str]] = {}
    for line in body.split(b"\n"):
        data = line.removeprefix(b"data:").strip() if line.startswith(b"data:") else b""
        if not data or data == b"[DONE]":
            continue
        for choice in json.loads(data).get("choices") or []:
            if choice.get("index", 0) != index:
                continue
            delta = choice.get("delta") or {}
            parts.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                name_args = calls.setdefault(int(call.get("index", 0)), ["", ""])
                function = call.get("function") or {}
                name_args[0] += function.get("name") or ""
                name_args[1] += function.get("arguments") or ""
    ordered = [(calls[i][0], calls[i][1]) for i in sorted(calls)]
    return "".join(parts), _parsed(ordered)


def _parsed(calls: list[tuple[str, str]]) -> list[tuple[str, Any]] | None:
    """Tool calls with their JSON arguments parsed (``{}`` for none); None if any is not JSON."""
    out: list[tuple[str, Any]] = []
    for name, arguments in calls:
        try:
            out.append((name, json.loads(arguments) if arguments else {}))
        except (ValueError, RecursionError):
            return None
    return out
