"""Fixtures for the LlamaIndex adapter against the local emulator.

``make_llm(emu, **kwargs)`` builds a ``Redpill`` with its own verifier over the emulator's trust
anchors; its retries sleep on a fake clock (a sleep advances the clock, never waits), so the
signature retry budget runs out at once and fault tests are fast.
``llm`` is one such LLM per module (its attestation cache makes the tests after the first fast);
tests that script replies or set faults also take ``emu``, which resets the shared emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.instrumentation import get_dispatcher

from redpill_integrations.emulator import Emulator
from redpill_integrations.llama_index import VERIFICATION_KEY, Redpill
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.wire import RedpillVerifier
from tests.support import FakeTime
from tests.support_llama_index import Collector

MODEL = "phala/gpt-oss-120b"


def make_llm(emu: Emulator, *, receipt_store: ReceiptStore | None = None, **kwargs: Any) -> Redpill:
    clock = FakeTime(start=1000.0)
    verifier = RedpillVerifier(
        base_url=emu.base_url,
        api_key=emu.api_key,
        trust=emu.trust,
        policy=VerificationPolicy(),
        receipt_store=receipt_store,
        sleep=clock.sleep,
        asleep=clock.asleep,
        monotonic=clock.monotonic,
    )
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_retries", 0)
    return Redpill(api_key=emu.api_key, api_base=emu.base_url, verifier=verifier, **kwargs)


def verdict(response: Any) -> dict[str, Any]:
    value: dict[str, Any] = response.additional_kwargs[VERIFICATION_KEY]
    return value


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ReceiptStore:
    return ReceiptStore(Path(tmp_path_factory.mktemp("receipts")) / "receipts.db")


@pytest.fixture(scope="module")
def llm(emulator: Emulator, store: ReceiptStore) -> Redpill:
    return make_llm(emulator, receipt_store=store)


@pytest.fixture
def collector() -> Iterator[Collector]:
    handler = Collector(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)
