"""The package creates and migrates the schema: from the first schema to the current one."""

from __future__ import annotations

import json

import pytest

from redpill_integrations.errors import ConfigurationError, ReceiptError
from redpill_integrations.stores import ReceiptStore
from redpill_integrations.stores import postgres as pg_backend
from redpill_integrations.stores import sqlite as sqlite_backend
from redpill_integrations.stores.base import SCHEMA_VERSION, Row

from ._receipts import receipt
from ._sql import execute


def _create_first_schema(url: str) -> None:
    statements = (
        [s for s in sqlite_backend.SCHEMA_V1.split(";") if s.strip()]
        if url.startswith("sqlite://")
        else [s for s in pg_backend.SCHEMA_V1 if "schema_version" not in s]
    )
    for statement in statements:
        execute(url, statement)


def _insert_v1(url: str, r: object) -> None:
    row = Row.of(r)  # type: ignore[arg-type]
    if not execute(url, "SELECT 1 FROM {evidence} WHERE sha256 = ?", (row.evidence_sha256,)):
        execute(
            url,
            "INSERT INTO {evidence}(sha256, body) VALUES (?, ?)",
            (row.evidence_sha256, row.evidence),
        )
    execute(
        url,
        "INSERT INTO {receipts}(receipt_id, created_at, status, chat_id, model, evidence_sha256,"
        " body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            row.receipt_id,
            row.created_at,
            row.status,
            row.chat_id,
            row.model,
            row.evidence_sha256,
            row.body,
        ),
    )


def test_a_first_schema_store_is_migrated_and_keeps_its_receipts(store_url: str) -> None:
    _create_first_schema(store_url)
    old_legacy = receipt(1)
    old_aci = receipt(2, protocol="aci", provider="near")
    _insert_v1(store_url, old_legacy)
    _insert_v1(store_url, old_aci)
    with ReceiptStore.open(store_url) as store:
        assert execute(store_url, "SELECT MAX(version) FROM {version}") == [(SCHEMA_VERSION,)]
        assert store.get("r1") == old_legacy
        assert [r.receipt_id for r in store.list(protocol="legacy")] == ["r1"]
        assert [r.receipt_id for r in store.list(provider="near")] == ["r2"]  # backfilled
        assert store.put(receipt(3)) is True
        assert [r.receipt_id for r in store.list(limit=-1)] == ["r3", "r2", "r1"]
    with ReceiptStore.open(store_url) as again:  # opening a current store changes nothing
        assert execute(store_url, "SELECT COUNT(*) FROM {version}") == [(1,)]
        assert len(again) == 3


def test_a_store_from_a_newer_version_is_refused(store_url: str) -> None:
    ReceiptStore.open(store_url).close()
    execute(store_url, "INSERT INTO {version}(version) VALUES (?)", (SCHEMA_VERSION + 1,))
    expected = ReceiptError if store_url.startswith("sqlite://") else ConfigurationError
    with pytest.raises(expected, match=f"has schema {SCHEMA_VERSION + 1}; this version"):
        ReceiptStore.open(store_url)


def test_the_stored_body_is_the_receipt_without_its_evidence(
    store: ReceiptStore, store_url: str
) -> None:
    store.put(receipt(1))
    ((body,),) = execute(store_url, "SELECT body FROM {receipts}")
    expected = receipt(1).to_dict()
    del expected["attestation"]
    assert json.loads(body) == expected
