"""PostgreSQL faults: down at start, gone mid-run (bounded retries, then a ReceiptError; the
verified call still returns its content), and a password in the URL that is never shown."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import openai
import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.errors import ConfigurationError, ReceiptError
from redpill_integrations.results import Status
from redpill_integrations.stores import ReceiptStore
from redpill_integrations.stores.postgres import PostgresReceiptStore
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier
from tests.support_postgres import SKIP_REASON, Cluster, find_bindir, free_port

from ._receipts import receipt

PASSWORD = "pw-Zq8!s3cr3t"  # a test password; trust authentication ignores it


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster this test may stop and start."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    cluster = Cluster(bindir)
    try:
        yield cluster
    finally:
        cluster.destroy()


def _no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert PASSWORD.replace("!", "%21") not in text


def test_database_down_at_start_is_a_configuration_error_naming_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    url = f"postgresql://redpill:{PASSWORD.replace('!', '%21')}@127.0.0.1:{port}/receipts"
    with pytest.raises(ConfigurationError) as info:
        ReceiptStore.open(url)
    message = str(info.value)
    assert message.startswith(
        f"cannot open receipt store postgresql://redpill:***@127.0.0.1:{port}/receipts: "
    )
    assert "Connection refused" in message or "connection failed" in message
    # the driver's exception is not chained: nothing it carries can leak through a traceback
    assert info.value.__cause__ is None and info.value.__suppress_context__
    _no_password(message, repr(info.value), caplog.text)


def test_a_password_in_the_url_is_never_shown(
    pg_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = pg_cluster.create_database().replace("redpill@", f"redpill:{PASSWORD}@")
    with ReceiptStore.open(url) as store:
        assert store.put(receipt(1)) is True
        assert repr(store) == f"PostgresReceiptStore({url.replace(PASSWORD, '***')!r})"
        _no_password(repr(store), str(vars(store).get("url")), caplog.text)


def test_database_gone_mid_run_retries_with_a_bound_then_raises_and_recovers(
    own_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = own_cluster.create_database().replace("redpill@", f"redpill:{PASSWORD}@")
    store = PostgresReceiptStore(url, attempts=3, backoff=0.05, timeout=1.0)
    try:
        assert store.put(receipt(1)) is True
        own_cluster.stop()
        start = time.monotonic()
        with pytest.raises(
            ReceiptError, match=r"^cannot store receipt after 3 attempts \("
        ) as info:
            store.put(receipt(2))
        assert time.monotonic() - start < 15  # bounded: 3 tries of at most ~1 s each, plus backoff
        assert "postgresql://redpill:***@127.0.0.1" in str(info.value)
        assert caplog.text.count("write failed") == 2  # the two retries are logged
        _no_password(str(info.value), caplog.text)
        own_cluster.start()
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects in the background; writes work again
            try:
                assert store.put(receipt(3)) is True
                break
            except ReceiptError:
                assert time.monotonic() < deadline
        assert [r.receipt_id for r in store.list(limit=-1)] == ["r3", "r1"]
    finally:
        store.close()


def test_a_verified_call_survives_the_database_going_away(
    own_cluster: Cluster, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = own_cluster.create_database().replace("redpill@", f"redpill:{PASSWORD}@")
    store = PostgresReceiptStore(url, attempts=2, backoff=0.01, timeout=1.0)
    try:
        with RedpillVerifier(
            base_url=emulator.base_url,
            api_key=emulator.api_key,
            trust=emulator.trust,
            receipt_store=store,
        ) as v:
            sdk = openai.OpenAI(
                base_url=emulator.base_url, api_key=emulator.api_key, http_client=v.http_client()
            )

            def call() -> tuple[str | None, object]:
                tag = v.recorder.new_tag()
                reply = sdk.chat.completions.create(
                    model="phala/gpt-oss-120b",
                    extra_headers={CAPTURE_HEADER: tag},
                    messages=[{"role": "user", "content": "hi"}],
                )
                return reply.choices[0].message.content, v.verify(v.recorder.take(tag))

            content, first = call()
            assert content and first.status is Status.VERIFIED  # type: ignore[attr-defined]
            assert first.receipt_id is not None  # type: ignore[attr-defined]
            own_cluster.stop()
            content, second = call()
        assert content  # the exchange's content is still returned
        assert second.status is Status.VERIFIED  # type: ignore[attr-defined]
        assert second.receipt_id is None  # type: ignore[attr-defined]  # no receipt to point at
        # never silently dropped: the verdict says the receipt was not stored, and why
        error = second.receipt_error  # type: ignore[attr-defined]
        assert error.startswith("not stored: cannot store receipt after 2 attempts")
        assert "could not be stored: cannot store receipt after 2 attempts" in caplog.text
        _no_password(caplog.text)
        _no_password(error)
    finally:
        store.close()
