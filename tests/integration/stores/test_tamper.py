"""A receipt row edited in the database fails offline re-verification (both backends)."""

from __future__ import annotations

import base64
import json

import openai
import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.receipts import reverify
from redpill_integrations.results import Reason, Status
from redpill_integrations.stores import ReceiptStore
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

from ._sql import execute


@pytest.fixture
def verified_id(emulator: Emulator, store: ReceiptStore) -> str:
    with RedpillVerifier(
        base_url=emulator.base_url,
        api_key=emulator.api_key,
        trust=emulator.trust,
        receipt_store=store,
    ) as v:
        sdk = openai.OpenAI(
            base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
        )
        tag = v.recorder.new_tag()
        sdk.chat.completions.create(
            model="phala/gpt-oss-120b",
            extra_headers={CAPTURE_HEADER: tag},
            messages=[{"role": "user", "content": "hi"}],
        )
        result = v.verify(v.recorder.take(tag))
    assert result.status is Status.VERIFIED and result.receipt_id is not None
    return result.receipt_id


def test_an_edited_response_body_in_the_database_fails_offline(
    emulator: Emulator, store: ReceiptStore, store_url: str, verified_id: str
) -> None:
    stored = store.get(verified_id)
    assert stored is not None
    assert reverify(stored, trust=emulator.trust).status is Status.VERIFIED  # untouched: passes
    ((body,),) = execute(
        store_url, "SELECT body FROM {receipts} WHERE receipt_id = ?", (verified_id,)
    )
    data = json.loads(body)
    response = base64.b64decode(data["response_body_b64"]).replace(
        b'"content":"', b'"content":"X', 1
    )
    assert response != base64.b64decode(data["response_body_b64"])
    data["response_body_b64"] = base64.b64encode(response).decode()
    execute(
        store_url,
        "UPDATE {receipts} SET body = ? WHERE receipt_id = ?",
        (json.dumps(data), verified_id),
    )
    edited = store.get(verified_id)
    assert edited is not None
    again = reverify(edited, trust=emulator.trust)
    assert (again.status, again.reasons) == (Status.FAILED, (Reason.RESPONSE_HASH_MISMATCH,))
