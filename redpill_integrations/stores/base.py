"""The one receipt-store interface, the URL factory and what every backend shares.

A store keeps exactly one row per receipt id: :meth:`ReceiptStore.put` is one atomic, idempotent
insert (the receipt row and its attestation evidence, de-duplicated by content hash, or nothing;
a receipt id already stored is left as it is and ``put`` returns ``False``). Every row also carries
the columns receipts are listed by: time, status, model, protocol and upstream provider
(:func:`listing_columns`). :meth:`ReceiptStore.export` streams JSON Lines oldest first without
loading the table into memory.

Backends are chosen by URL (:meth:`ReceiptStore.open`): ``sqlite:///abs/path`` (or a plain path)
and ``postgresql://user:password@host:port/db``. ``ReceiptStore(path)`` still opens SQLite. The
schema of both is created and migrated by the package: see ``docs/receipt-stores.md``.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from redpill_integrations.errors import ConfigurationError, ReceiptError
from redpill_integrations.receipts import Receipt
from redpill_integrations.verify.models import AttestationEvidence

__all__ = [
    "SCHEMA_VERSION",
    "Filters",
    "ReceiptStore",
    "Row",
    "body_columns",
    "columns_of",
    "default_path",
    "listing_columns",
    "redact_url",
]

#: the schema version this code writes; older stores are migrated when opened
SCHEMA_VERSION = 2

ENV = "REDPILL_RECEIPTS"


def default_path() -> Path:
    """Where the embedded store lives when nothing is configured."""
    return Path.home() / ".redpill" / "receipts.sqlite3"


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: the only form that is ever shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable store URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def url_password(url: str) -> str | None:
    """The password in ``url`` (decoded), to scrub it from any text before that text is shown."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def listing_columns(receipt: Receipt) -> tuple[str, str | None]:
    """``(protocol, upstream_provider)`` of a receipt's verdict (see :func:`columns_of`)."""
    return columns_of(receipt.result.to_dict())


def columns_of(result: Any) -> tuple[str, str | None]:
    """``(protocol, upstream_provider)`` from a verdict's dict form, read defensively: the
    protocol is ``"legacy"`` when the verdict names none; the provider is ``None`` when the
    verdict carries no ACI upstream. (Stores backfill old rows from the stored JSON with this,
    so fields this version does not model are still found.)"""
    if not isinstance(result, dict):
        return "legacy", None
    protocol = result.get("protocol")
    aci = result.get("aci")
    upstream = aci.get("upstream") if isinstance(aci, dict) else None
    provider = upstream.get("provider") if isinstance(upstream, dict) else None
    return (
        str(protocol) if protocol else "legacy",
        str(provider) if provider else None,
    )


def body_columns(body: str) -> tuple[str, str | None]:
    """:func:`columns_of` the verdict inside a stored receipt body (defaults if unreadable)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "legacy", None
    return columns_of(data.get("result") if isinstance(data, dict) else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    """One receipt as stored: its listing columns, its body (the receipt's JSON without the
    attestation evidence) and the evidence JSON with its sha256 (both ``None`` without one)."""

    receipt_id: str
    created_at: str
    status: str
    chat_id: str | None
    model: str | None
    protocol: str
    provider: str | None
    evidence_sha256: str | None
    evidence: str | None
    body: str

    @classmethod
    def of(cls, receipt: Receipt) -> Row:
        data = dataclasses.replace(receipt, attestation=None).to_dict()
        del data["attestation"]
        sha, evidence = _evidence_json(receipt.attestation)
        protocol, provider = listing_columns(receipt)
        return cls(
            receipt_id=receipt.receipt_id,
            created_at=str(data["created_at"]),
            status=receipt.result.status.value,
            chat_id=receipt.chat_id,
            model=receipt.model,
            protocol=protocol,
            provider=provider,
            evidence_sha256=sha,
            evidence=evidence,
            body=json.dumps(data, sort_keys=True, separators=(",", ":")),
        )


#: the last few attestations serialised: one cached attestation backs many receipts, so its
#: ~60 KB of JSON is built and hashed once, not once per receipt (the entries hold the evidence
#: object itself, so an ``id`` is never confused with a later object's)
_EVIDENCE_CACHE: OrderedDict[int, tuple[AttestationEvidence, str, str]] = OrderedDict()
_EVIDENCE_LOCK = threading.Lock()
_EVIDENCE_CACHE_SIZE = 16


def _evidence_json(att: AttestationEvidence | None) -> tuple[str | None, str | None]:
    """``(sha256, json)`` of an attestation's stored form, or ``(None, None)``."""
    if att is None:
        return None, None
    key = id(att)
    with _EVIDENCE_LOCK:
        hit = _EVIDENCE_CACHE.get(key)
        if hit is not None and hit[0] is att:
            _EVIDENCE_CACHE.move_to_end(key)
            return hit[1], hit[2]
    text = json.dumps(att.to_dict(), sort_keys=True, separators=(",", ":"))
    sha = hashlib.sha256(text.encode()).hexdigest()
    with _EVIDENCE_LOCK:
        _EVIDENCE_CACHE[key] = (att, sha, text)
        while len(_EVIDENCE_CACHE) > _EVIDENCE_CACHE_SIZE:
            _EVIDENCE_CACHE.popitem(last=False)
    return sha, text


def load(body: str, evidence: str | None) -> Receipt:
    """A stored row back into a :class:`Receipt` (``ReceiptError`` when it is corrupt)."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        data["attestation"] = json.loads(evidence) if evidence else None
    except (ValueError, RecursionError) as exc:
        raise ReceiptError("stored receipt is corrupt") from exc
    return Receipt.from_dict(data)


@dataclass(frozen=True, kw_only=True, slots=True)
class Filters:
    """Listing filters (all optional, combined with AND); each is an indexed column."""

    status: str | None = None
    model: str | None = None
    protocol: str | None = None
    provider: str | None = None

    def items(self) -> list[tuple[str, str]]:
        """``(column, value)`` for each filter that is set, in a fixed order."""
        named = (
            ("status", self.status),
            ("model", self.model),
            ("protocol", self.protocol),
            ("provider", self.provider),
        )
        return [(col, val) for col, val in named if val is not None]


class ReceiptStore:
    """A receipt store. ``ReceiptStore(path)`` opens the SQLite backend (as it always did);
    :meth:`open` chooses the backend by URL; :meth:`default` reads ``$REDPILL_RECEIPTS``.

    Backends implement :meth:`put`, :meth:`get`, :meth:`list`, :meth:`iter_all`, ``__len__``
    and :meth:`close`; :meth:`aput` defaults to :meth:`put` in a worker thread.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ReceiptStore:
        if cls is ReceiptStore:  # the historical spelling: ReceiptStore(path) is SQLite
            from redpill_integrations.stores.sqlite import SQLiteReceiptStore

            return super().__new__(SQLiteReceiptStore)
        return super().__new__(cls)

    @classmethod
    def open(cls, url: str | os.PathLike[str]) -> ReceiptStore:
        """Open the store ``url`` names: ``sqlite:///path`` (or a bare path) or
        ``postgresql://…`` / ``postgres://…``. ``ConfigurationError`` for any other scheme or a
        database that cannot be reached (the message names the URL without its password)."""
        text = os.fspath(url)
        scheme = text.split("://", 1)[0].lower() if "://" in text else ""
        if scheme in ("postgresql", "postgres"):
            from redpill_integrations.stores.postgres import PostgresReceiptStore

            return PostgresReceiptStore(text)
        from redpill_integrations.stores.sqlite import SQLiteReceiptStore

        if scheme == "sqlite":
            path = text[len("sqlite://") :]
            if not path.startswith("/") or path == "/":
                raise ConfigurationError(
                    f"sqlite store URL must be sqlite:///absolute/path, got {redact_url(text)!r}"
                )
            return SQLiteReceiptStore(path)
        if scheme:
            raise ConfigurationError(
                f"unknown receipt store scheme {scheme!r} in {redact_url(text)!r} "
                "(use sqlite:///path or postgresql://...)"
            )
        return SQLiteReceiptStore(text)

    @classmethod
    def default(cls) -> ReceiptStore:
        """``$REDPILL_RECEIPTS`` (a URL or a path) or ``~/.redpill/receipts.sqlite3``."""
        env = os.environ.get(ENV)
        return cls.open(env) if env else cls.open(default_path())

    # -- the backend contract ---------------------------------------------------------------

    def put(self, receipt: Receipt) -> bool:
        """Store ``receipt`` atomically; ``True`` if it was new, ``False`` if its id was already
        stored (nothing is changed then). ``ReceiptError`` when it cannot be stored."""
        raise NotImplementedError

    async def aput(self, receipt: Receipt) -> bool:
        """:meth:`put` for async code: never blocks the event loop."""
        return await asyncio.to_thread(self.put, receipt)

    def get(self, receipt_id: str) -> Receipt | None:
        raise NotImplementedError

    def list(
        self,
        limit: int = 50,
        status: str | None = None,
        *,
        model: str | None = None,
        protocol: str | None = None,
        provider: str | None = None,
    ) -> list[Receipt]:
        """Newest first; ``limit < 0`` means all."""
        filters = Filters(status=status, model=model, protocol=protocol, provider=provider)
        return self._list(filters, limit)

    def iter_all(
        self,
        status: str | None = None,
        *,
        model: str | None = None,
        protocol: str | None = None,
        provider: str | None = None,
        newest_first: bool = False,
    ) -> Iterator[Receipt]:
        """Every matching receipt, oldest first unless ``newest_first``, read in batches (the
        table is never loaded into memory)."""
        filters = Filters(status=status, model=model, protocol=protocol, provider=provider)
        for _rid, body, evidence in self._rows(filters, newest_first=newest_first):
            yield load(body, evidence)

    def iter_checked(
        self, *, newest_first: bool = False
    ) -> Iterator[tuple[str, Receipt | ReceiptError]]:
        """Every row as ``(receipt_id, receipt)``, or ``(receipt_id, error)`` for a row that does
        not load, so one corrupt row cannot hide the others (what an audit needs)."""
        for rid, body, evidence in self._rows(Filters(), newest_first=newest_first):
            try:
                yield rid, load(body, evidence)
            except ReceiptError as exc:
                yield rid, exc

    def _list(self, filters: Filters, limit: int) -> builtins.list[Receipt]:
        raise NotImplementedError

    def _rows(
        self, filters: Filters, *, newest_first: bool
    ) -> Iterator[tuple[str, str, str | None]]:
        """``(receipt_id, body, evidence)`` of every matching row, oldest first unless
        ``newest_first``, read in bounded batches."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close from async code (backends with async resources override this)."""
        await asyncio.to_thread(self.close)

    # -- shared ---------------------------------------------------------------------------------

    def export(
        self,
        out: IO[str] | str | os.PathLike[str],
        *,
        status: str | None = None,
        model: str | None = None,
        protocol: str | None = None,
        provider: str | None = None,
    ) -> int:
        """Write receipts as JSON Lines (oldest first) to a text stream or a file path; returns
        how many. Each line is one ``Receipt.to_json()``, readable by ``Receipt.from_json``.
        Rows are streamed: memory use does not grow with the table."""
        if isinstance(out, str | os.PathLike):
            with open(out, "w", encoding="utf-8") as fh:
                return self.export(
                    fh, status=status, model=model, protocol=protocol, provider=provider
                )
        count = 0
        for receipt in self.iter_all(
            status=status, model=model, protocol=protocol, provider=provider
        ):
            out.write(receipt.to_json() + "\n")
            count += 1
        return count

    def __enter__(self) -> ReceiptStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
