"""Fixtures that run the receipt-store tests against both backends.

- ``pg_cluster``: one real PostgreSQL server for the session (``tests/support_postgres.py``);
  the PostgreSQL tests skip, saying why, when the server binaries are absent.
- ``store_url``: parametrised over ``sqlite`` and ``postgres``: a fresh SQLite file URL or a fresh
  database on the session cluster.
- ``store``: ``ReceiptStore.open(store_url)``, closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpill_integrations.stores import ReceiptStore
from tests.support_postgres import SKIP_REASON, Cluster, find_bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    cluster = Cluster(bindir)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/receipts.sqlite3"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def store(store_url: str) -> Iterator[ReceiptStore]:
    s = ReceiptStore.open(store_url)
    try:
        yield s
    finally:
        s.close()
