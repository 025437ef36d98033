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
from redpill_integrations.stores.audit import Changed, reverify_store
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

from ._sql import execute


def _verified_calls(emulator: Emulator, store: ReceiptStore, n: int) -> list[str]:
    with RedpillVerifier(
        base_url=emulator.base_url,
        api_key=emulator.api_key,
        trust=emulator.trust,
        receipt_store=store,
    ) as v:
        sdk = openai.OpenAI(
            base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
        )
        ids = []
        for i in range(n):
            tag = v.recorder.new_tag()
            sdk.chat.completions.create(
                model="phala/gpt-oss-120b",
                extra_headers={CAPTURE_HEADER: tag},
                messages=[{"role": "user", "content": f"hi {i}"}],
            )
            result = v.verify(v.recorder.take(tag))
            assert result.status is Status.VERIFIED and result.receipt_id is not None
            ids.append(result.receipt_id)
    return ids


@pytest.fixture
def verified_id(emulator: Emulator, store: ReceiptStore) -> str:
    (rid,) = _verified_calls(emulator, store, 1)
    return rid


def _edit_response(store_url: str, rid: str) -> None:
    ((body,),) = execute(store_url, "SELECT body FROM {receipts} WHERE receipt_id = ?", (rid,))
    data = json.loads(body)
    response = base64.b64decode(data["response_body_b64"])
    edited = response.replace(b'"content":"', b'"content":"X', 1)
    assert edited != response
    data["response_body_b64"] = base64.b64encode(edited).decode()
    execute(
        store_url, "UPDATE {receipts} SET body = ? WHERE receipt_id = ?", (json.dumps(data), rid)
    )


def test_an_edited_response_body_in_the_database_fails_offline(
    emulator: Emulator, store: ReceiptStore, store_url: str, verified_id: str
) -> None:
    stored = store.get(verified_id)
    assert stored is not None
    assert reverify(stored, trust=emulator.trust).status is Status.VERIFIED  # untouched: passes
    _edit_response(store_url, verified_id)
    edited = store.get(verified_id)
    assert edited is not None
    again = reverify(edited, trust=emulator.trust)
    assert (again.status, again.reasons) == (Status.FAILED, (Reason.RESPONSE_HASH_MISMATCH,))


def test_reverify_store_reports_every_changed_and_unreadable_row(
    emulator: Emulator, store: ReceiptStore, store_url: str
) -> None:
    ids = _verified_calls(emulator, store, 3)
    _edit_response(store_url, ids[0])
    execute(store_url, "UPDATE {receipts} SET body = '[' WHERE receipt_id = ?", (ids[1],))
    seen: list[tuple[int, int]] = []
    summary = reverify_store(
        store, trust=emulator.trust, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert summary.total == 3 and summary.statuses == {"failed": 1, "verified": 1}
    assert summary.changed == (
        Changed(
            receipt_id=ids[0], was="verified", now="failed", reasons=("RESPONSE_HASH_MISMATCH",)
        ),
    )
    assert summary.unreadable == ((ids[1], "stored receipt is corrupt"),)
    assert not summary.clean
    assert summary.render().splitlines()[-1] == "1 changed, 1 unreadable"


def test_reverify_store_of_an_untouched_store_is_clean(
    emulator: Emulator, store: ReceiptStore
) -> None:
    _verified_calls(emulator, store, 2)
    summary = reverify_store(store, trust=emulator.trust)
    assert summary.clean and summary.statuses == {"verified": 2}
    assert summary.render() == (
        "2 receipts re-verified offline (verified: 2)\nall verdicts unchanged"
    )
