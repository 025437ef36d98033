"""Child process for test_crash.py: writes receipts in a loop until it is killed.

``python -m tests.reliability._crash_child chat STORE TRUST_FILE MODEL [lc|li]`` makes annotate-mode
calls to the emulator named in TRUST_FILE, each storing its receipt in STORE; ``... raw STORE`` puts
large synthetic receipts as fast as it can. After each exchange has completed (its receipt
written), the child prints ``<receipt_id> <chat_id>`` and flushes: the parent kills it with SIGKILL
at a moment of its choosing and checks every id printed is in the store.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from redpill_integrations.receipts import Receipt, ReceiptStore
from redpill_integrations.results import Reason, VerificationResult


def report(receipt_id: str, chat_id: str) -> None:
    sys.stdout.write(f"{receipt_id} {chat_id}\n")
    sys.stdout.flush()


def raw(store: ReceiptStore) -> None:
    body = os.urandom(96 * 1024)
    i = 0
    while True:
        rid, chat_id = uuid.uuid4().hex, f"chatcmpl-raw-{i}"
        result = VerificationResult.unverifiable(
            Reason.SIGNATURE_UNAVAILABLE, chat_id=chat_id, receipt_id=rid
        )
        receipt = Receipt(
            receipt_id=rid,
            created_at=datetime.now(UTC),
            result=result,
            chat_id=chat_id,
            request_body=body,
            response_body=body[::-1],
        )
        store.put(receipt)
        report(rid, chat_id)
        i += 1


def chat(store: ReceiptStore, trust_file: str, model: str, kind: str) -> None:
    from redpill_integrations.policy import TrustAnchors, VerificationPolicy
    from redpill_integrations.wire import RedpillVerifier

    trust = TrustAnchors.from_file(trust_file)
    assert trust.base_url is not None
    verifier = RedpillVerifier(
        base_url=trust.base_url,
        api_key="sk-crash",
        trust=trust,
        receipt_store=store,
        policy=VerificationPolicy(signature_deadline=5.0),
    )
    if kind == "lc":
        from redpill_integrations.langchain import ChatRedpill

        lc = ChatRedpill(
            model=model,
            api_key=SecretStr("sk-crash"),
            base_url=trust.base_url,
            verification="annotate",
            verifier=verifier,
        )

        def ask(i: int) -> dict[str, Any]:
            return lc.invoke(f"crash test {i}").response_metadata
    else:
        from llama_index.core.base.llms.types import ChatMessage

        from redpill_integrations.llama_index import Redpill

        li = Redpill(
            model=model,
            api_key="sk-crash",
            api_base=trust.base_url,
            verification="annotate",
            verifier=verifier,
        )

        def ask(i: int) -> dict[str, Any]:
            msgs = [ChatMessage(role="user", content=f"crash test {i}")]
            return dict(li.chat(msgs).additional_kwargs)

    i = 0
    while True:
        verdict = ask(i)["redpill_verification"]
        report(verdict["receipt_id"], verdict["chat_id"])
        i += 1


if __name__ == "__main__":
    with_store = ReceiptStore(sys.argv[2])
    if sys.argv[1] == "raw":
        raw(with_store)
    else:
        chat(with_store, sys.argv[3], sys.argv[4], sys.argv[5])
