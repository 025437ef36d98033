"""Group commit: writers waiting during a commit share the next one; each gets its own answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from redpill_integrations.errors import ReceiptError
from redpill_integrations.stores.batching import GroupCommit


def test_one_writer_is_one_transaction_per_row() -> None:
    calls: list[list[str]] = []

    def write(rows: Sequence[str]) -> list[bool]:
        calls.append(list(rows))
        return [True] * len(rows)

    group: GroupCommit[str] = GroupCommit(write)
    assert group.submit("a") is True and group.submit("b") is True
    assert calls == [["a"], ["b"]]


def test_writers_arriving_during_a_commit_share_the_next_one() -> None:
    calls: list[list[str]] = []
    first_started, release = threading.Event(), threading.Event()

    def write(rows: Sequence[str]) -> list[bool]:
        calls.append(list(rows))
        if len(calls) == 1:
            first_started.set()
            assert release.wait(10)
        return [not r.startswith("dup") for r in rows]

    group: GroupCommit[str] = GroupCommit(write)
    with ThreadPoolExecutor(11) as pool:
        first = pool.submit(group.submit, "first")
        assert first_started.wait(10)
        rest = [pool.submit(group.submit, f"r{i}") for i in range(9)]
        rest.append(pool.submit(group.submit, "dup"))
        while len(group._queue) < 10:  # all ten are queued behind the running commit
            time.sleep(0.001)
        release.set()
        assert first.result() is True
        assert [f.result() for f in rest] == [True] * 9 + [False]  # each gets its own answer
    assert calls[0] == ["first"]
    assert sorted(calls[1]) == sorted([f"r{i}" for i in range(9)] + ["dup"])
    assert len(calls) == 2


def test_a_failed_commit_fails_every_writer_in_it() -> None:
    def write(rows: Sequence[str]) -> list[bool]:
        raise ReceiptError("cannot store receipt: disk full")

    group: GroupCommit[str] = GroupCommit(write)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(group.submit, str(i)) for i in range(4)]
        for f in futures:
            with pytest.raises(ReceiptError, match=r"^cannot store receipt: disk full$"):
                f.result()
    assert group._queue == []
