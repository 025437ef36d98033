"""ChatRedpill against the loopback emulator: a verifier whose clock only moves when it sleeps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations import ReceiptStore, RedpillVerifier
from redpill_integrations.emulator import Emulator
from redpill_integrations.langchain import ChatRedpill
from tests.support import FakeTime

MODEL = "phala/gpt-oss-120b"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A standard-suite class with ``standard_tests_only = "prefix"`` keeps only those tests."""
    dropped = []
    for item in items:
        only = getattr(getattr(item, "cls", None), "standard_tests_only", None)
        if only and not item.name.startswith(only):
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@pytest.fixture
def store(tmp_path: Path) -> ReceiptStore:
    return ReceiptStore(tmp_path / "receipts.sqlite3")


@pytest.fixture
def make_verifier(emu: Emulator, store: ReceiptStore) -> Callable[..., RedpillVerifier]:
    def build(**kwargs: Any) -> RedpillVerifier:
        clock = FakeTime()
        kwargs.setdefault("receipt_store", store)
        return RedpillVerifier(
            base_url=emu.base_url,
            api_key=emu.api_key,
            trust=emu.trust,
            sleep=clock.sleep,
            asleep=clock.asleep,
            monotonic=clock.monotonic,
            **kwargs,
        )

    return build


@pytest.fixture
def make_chat(
    emu: Emulator, make_verifier: Callable[..., RedpillVerifier]
) -> Callable[..., ChatRedpill]:
    def build(**kwargs: Any) -> ChatRedpill:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("max_retries", 0)
        if kwargs.get("verification") != "off":
            kwargs.setdefault("verifier", make_verifier())
        return ChatRedpill(base_url=emu.base_url, api_key=emu.api_key, **kwargs)

    return build
