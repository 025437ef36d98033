"""Each ACI fault does what it says (checked with the independent helpers in ``_aci``)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.emulator.aci.receipts import ReceiptStore
from tests.integration.emulator._aci import (
    chat_body,
    client,
    custody_roots,
    events,
    fresh_nonce,
    jcs,
    keyset_digest,
    post_chat,
    receipt_key,
    sha,
    signature_ok,
    statement,
)
from tests.support import FakeTime


def _exchange(
    emu: Emulator, faults: Faults, *, stream: bool = False, **extra: Any
) -> dict[str, Any]:
    """One chat with ``faults`` in the request header; returns what a verifier would see."""
    body = chat_body(stream=stream, **extra)
    with client(emu) as c:
        report = c.get("/v1/aci/attestation", params={"nonce": fresh_nonce()}).json()
        r = post_chat(c, body, **{"X-Emulator-Faults": faults.to_header()})
        rid = r.headers.get("x-receipt-id")
        fetched = c.get(f"/v1/aci/receipts/{rid}") if rid else None
    receipt = fetched.json() if fetched is not None and fetched.status_code == 200 else None
    return {"body": body, "response": r, "report": report, "receipt": receipt, "rid": rid}


def _report(emu: Emulator, faults: Faults, nonce: str) -> tuple[bytes, dict[str, Any]]:
    with client(emu, token=None) as c:
        r = c.get(
            "/v1/aci/attestation",
            params={"nonce": nonce},
            headers={"X-Emulator-Faults": faults.to_header()},
        )
    return r.content, json.loads(r.content)


def test_receipt_not_ready_answers_404_for_n_lookups(aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(receipt_not_ready=2))
    with client(aci_emu) as c:
        rid = post_chat(c, chat_body()).headers["x-receipt-id"]
        codes = [c.get(f"/v1/aci/receipts/{rid}").status_code for _ in range(3)]
    assert codes == [404, 404, 200]


def test_receipt_lost_is_404_on_every_lookup(aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(receipt_not_ready=10**9))
    with client(aci_emu) as c:
        rid = post_chat(c, chat_body()).headers["x-receipt-id"]
        assert {c.get(f"/v1/aci/receipts/{rid}").status_code for _ in range(3)} == {404}


def test_late_receipt_appears_after_its_delay(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    # a fake clock drives readiness: on real time a loaded machine's first lookup came late
    emu = emulator_factory(seed="aci-late", protocol="aci")
    fake = FakeTime(start=1024.0)  # binary fractions: exact boundaries
    emu.state.receipts = ReceiptStore(clock=fake.monotonic)
    x = _exchange(emu, Faults(receipt_delay=0.5))
    assert x["receipt"] is None
    with client(emu) as c:
        fake.sleep(0.375)
        assert c.get(f"/v1/aci/receipts/{x['rid']}").status_code == 404
        fake.sleep(0.125)  # ready exactly at the delay
        assert c.get(f"/v1/aci/receipts/{x['rid']}").status_code == 200


def test_receipt_unauthorized_answers_401(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults(receipt_unauthorized=True))
    assert x["receipt"] is None
    with client(aci_emu) as c:
        r = c.get(f"/v1/aci/receipts/{x['rid']}")
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"


@pytest.mark.parametrize(
    ("which", "event"), [("request", "request.received"), ("response", "response.returned")]
)
def test_tampered_receipt_body_hash_is_validly_signed(
    aci_emu: Emulator, which: str, event: str
) -> None:
    x = _exchange(aci_emu, Faults(receipt_body_hash=which))  # type: ignore[arg-type]
    receipt = x["receipt"]
    key = receipt_key(x["report"]["attestation"]["workload_keyset"], receipt["key_id"])
    assert key is not None and signature_ok(receipt, key)
    exact = sha(x["body"]) if which == "request" else sha(x["response"].content)
    assert events(receipt, event)[0]["body_hash"] != exact


def test_tampered_response_differs_from_the_signed_bytes(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults(tamper_response="alter"), stream=True)
    assert events(x["receipt"], "response.returned")[0]["body_hash"] != sha(x["response"].content)


def test_bad_receipt_signature_does_not_verify(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults(receipt_bad_signature=True))
    key = receipt_key(x["report"]["attestation"]["workload_keyset"], x["receipt"]["key_id"])
    assert key is not None and not signature_ok(x["receipt"], key)


def test_receipt_signed_by_a_key_outside_the_keyset(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults(receipt_foreign_key=True))
    keyset = x["report"]["attestation"]["workload_keyset"]
    assert receipt_key(keyset, x["receipt"]["key_id"]) is None
    for k in keyset["receipt_signing_keys"]:
        assert not signature_ok(x["receipt"], bytes.fromhex(k["public_key"]))


@pytest.mark.parametrize("field", ["chat_id", "endpoint", "model", "receipt_id"])
def test_receipt_for_another_exchange(aci_emu: Emulator, field: str) -> None:
    x = _exchange(aci_emu, Faults(receipt_mismatch=field))  # type: ignore[arg-type]
    receipt = x["receipt"]
    key = receipt_key(x["report"]["attestation"]["workload_keyset"], receipt["key_id"])
    assert key is not None and signature_ok(receipt, key)
    ours = {
        "chat_id": x["response"].json()["id"],
        "endpoint": "/v1/chat/completions",
        "model": "phala/gpt-oss-120b",
        "receipt_id": x["rid"],
    }
    assert receipt[field] != ours[field]
    assert all(receipt[f] == v for f, v in ours.items() if f != field)


def test_stale_served_at(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults(stale_served_at=True))
    assert x["receipt"]["served_at"] < time.time() - 3000


def test_upstream_failed_and_not_required(aci_emu: Emulator) -> None:
    failed = _exchange(aci_emu, Faults(upstream_failed=True))
    assert failed["response"].status_code == 200
    assert events(failed["receipt"], "upstream.verified")[0]["result"] == "failed"
    lax = _exchange(aci_emu, Faults(upstream_not_required=True), provider={"aci_verified": True})
    upstream = events(lax["receipt"], "upstream.verified")[0]
    assert (upstream["result"], upstream["required"]) == ("verified", False)


def test_session_whose_id_does_not_recompute(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults())
    sid = events(x["receipt"], "upstream.verified")[0]["session_id"]
    with client(aci_emu) as c:
        raw = c.get(
            f"/v1/aci/sessions/{sid}",
            headers={"X-Emulator-Faults": Faults(session_id_mismatch=True).to_header()},
        ).content
        good = c.get(f"/v1/aci/sessions/{sid}").content
    assert hashlib.sha256(jcs(json.loads(raw))).hexdigest() != sid
    assert hashlib.sha256(good).hexdigest() == sid


def test_missing_receipt_id_header(aci_emu: Emulator) -> None:
    x = _exchange(aci_emu, Faults(missing_receipt_id=True))
    assert x["response"].status_code == 200 and x["rid"] is None


def test_rotate_keyset_changes_the_next_responses_digest(aci_emu: Emulator) -> None:
    before = aci_emu.keyset_digest
    x = _exchange(aci_emu, Faults(rotate_keyset=True))
    assert x["response"].headers["x-aci-keyset-digest"] == before
    assert x["receipt"]["workload_keyset_digest"] == before
    with client(aci_emu) as c:
        after = c.get("/").headers["x-aci-keyset-digest"]
    assert after != before and after == aci_emu.keyset_digest
    aci_emu.rotate_keyset()
    with client(aci_emu) as c:
        assert c.get("/").headers["x-aci-keyset-digest"] not in (before, after)


def test_keyset_digest_that_does_not_recompute(aci_emu: Emulator) -> None:
    nonce = fresh_nonce()
    _, report = _report(aci_emu, Faults(keyset_digest_mismatch=True), nonce)
    digest = keyset_digest(report)
    assert report["workload_keyset_digest"] != digest
    assert (
        report["attestation"]["report_data"] == hashlib.sha256(statement(digest, nonce)).hexdigest()
    )


def test_statement_without_our_nonce(aci_emu: Emulator) -> None:
    nonce = fresh_nonce()
    _, report = _report(aci_emu, Faults(ignore_nonce=True), nonce)
    digest = keyset_digest(report)
    assert (
        report["attestation"]["report_data"] != hashlib.sha256(statement(digest, nonce)).hexdigest()
    )
    quote = bytes.fromhex(report["attestation"]["evidence"]["quote"])
    assert quote[568:600].hex() == report["attestation"]["report_data"]  # consistent, just stale


def test_quote_over_another_statement(aci_emu: Emulator) -> None:
    nonce = fresh_nonce()
    _, report = _report(aci_emu, Faults(quote_other_statement=True), nonce)
    expected = hashlib.sha256(statement(keyset_digest(report), nonce)).digest()
    assert report["attestation"]["report_data"] == expected.hex()
    quote = bytes.fromhex(report["attestation"]["evidence"]["quote"])
    assert quote[568:632] != expected + bytes(32)


def test_expired_keyset_everywhere(aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(keyset_expired=True))
    x = _exchange(aci_emu, Faults())
    keyset = x["report"]["attestation"]["workload_keyset"]
    assert keyset["not_after"] < time.time()
    digest = keyset_digest(x["report"])
    assert x["report"]["workload_keyset_digest"] == digest
    assert x["response"].headers["x-aci-keyset-digest"] == digest
    assert x["receipt"]["workload_keyset_digest"] == digest


def test_custody_chain_to_an_unknown_root(aci_emu: Emulator) -> None:
    _, report = _report(aci_emu, Faults(custody_unknown_root=True), fresh_nonce())
    app_id = aci_emu.trust_dict()["aci_app_ids"][0]
    roots = custody_roots(report, app_id)
    assert roots and roots.isdisjoint(aci_emu.trust_dict()["kms_root_pubkeys"])


def test_compose_and_rtmr_faults_in_the_aci_report(aci_emu: Emulator) -> None:
    _, report = _report(aci_emu, Faults(compose_mismatch=True), fresh_nonce())
    ev = report["attestation"]["evidence"]
    compose_event = next(e for e in json.loads(ev["event_log"]) if e["event"] == "compose-hash")
    assert hashlib.sha256(ev["app_compose"].encode()).hexdigest() != compose_event["event_payload"]
    _, report = _report(aci_emu, Faults(rtmr_mismatch=True), fresh_nonce())
    ev = report["attestation"]["evidence"]
    mr = bytes(48)
    for e in json.loads(ev["event_log"]):
        if e["imr"] == 3:
            mr = hashlib.sha384(mr + bytes.fromhex(e["digest"])).digest()
    assert bytes.fromhex(ev["quote"])[520:568] != mr


def _has_duplicate_keys(raw: bytes) -> bool:
    dup = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal dup
        dup = dup or len({k for k, _ in pairs}) != len(pairs)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return dup


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("fault", ["duplicate_key", "deep"])
def test_json_faults_in_every_document(aci_emu: Emulator, fault: str) -> None:
    faults = Faults(json_fault=fault)  # type: ignore[arg-type]
    header = {"X-Emulator-Faults": faults.to_header()}
    x = _exchange(aci_emu, Faults())
    sid = events(x["receipt"], "upstream.verified")[0]["session_id"]
    with client(aci_emu) as c:
        docs = [
            c.get("/v1/aci/attestation", headers=header).content,
            c.get(f"/v1/aci/receipts/{x['rid']}", headers=header).content,
            c.get(f"/v1/aci/sessions/{sid}", headers=header).content,
        ]
    for raw in docs:
        if fault == "duplicate_key":
            assert _has_duplicate_keys(raw)
        else:
            assert _depth(json.loads(raw)) > 64


def test_legacy_signature_alias_keeps_the_counted_lookup_faults(aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(signature_not_ready=1, rate_limited=1, retry_after=2.0))
    with client(aci_emu) as c:
        chat_id = post_chat(c, chat_body()).json()["id"]
        answers = [c.get(f"/v1/signature/{chat_id}") for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 429, 200]
    assert answers[1].headers["retry-after"] == "2"
    assert answers[2].json()["signing_address"] == aci_emu.signing_address
