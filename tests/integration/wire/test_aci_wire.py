"""The ACI protocol in the wire layer, end to end: a plain ``openai`` client over
``verifier.http_client()`` with the capture tag, against ``Emulator(protocol="aci")`` on loopback.

Every exchange gets exactly one receipt in the store, and each fault of the emulator gives its
exact reason code through the verifier's own fetches (receipt retries, sessions, the gateway
identity cached per keyset digest).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from redpill_integrations.emulator import Emulator, Faults
from redpill_integrations.emulator.aci.routes import with_json_fault
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.receipts import Receipt, ReceiptStore
from redpill_integrations.results import Reason, Status
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier
from tests.support import FakeTime

MODEL = "phala/gpt-oss-120b"
NON_TEE = "openai/gpt-4o-mini"
KEY = "sk-aci-wire-test"
MSG = [{"role": "user", "content": "héllo"}]


class Rig:
    """A verifier with a store and fake time, an OpenAI client over its capturing client, and
    a log of every request the verifier itself sent."""

    def __init__(
        self,
        emu: Emulator,
        tmp_path: Path,
        *,
        policy: VerificationPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.time = FakeTime()
        self.fetched: list[httpx.Request] = []
        inner = transport or httpx.HTTPTransport()

        def log(request: httpx.Request) -> None:
            self.fetched.append(request)

        self.store = ReceiptStore(tmp_path / f"receipts-{id(self)}.sqlite3")
        self.verifier = RedpillVerifier(
            base_url=emu.base_url,
            api_key=KEY,
            trust=emu.trust,
            policy=policy,
            receipt_store=self.store,
            sleep=self.time.sleep,
            asleep=self.time.asleep,
            monotonic=self.time.monotonic,
            transport=_Logging(inner, log),
        )
        self.client = openai.OpenAI(
            base_url=emu.base_url,
            api_key=KEY,
            http_client=self.verifier.http_client(),
            max_retries=0,
        )

    def chat(self, *, stream: bool = False, model: str = MODEL, **extra: Any) -> Receipt:
        tag = self.verifier.recorder.new_tag()
        kwargs: dict[str, Any] = {"extra_headers": {CAPTURE_HEADER: tag}}
        if extra:
            kwargs["extra_body"] = extra
        try:
            if stream:
                for _ in self.client.chat.completions.create(
                    model=model, messages=MSG, stream=True, **kwargs
                ):
                    pass
            else:
                self.client.chat.completions.create(model=model, messages=MSG, **kwargs)
        except openai.APIStatusError:
            pass  # a refusal or an error: still captured, still verified
        return self.verifier.verify_exchange(self.verifier.recorder.take(tag))

    def paths(self) -> list[str]:
        return [r.url.path for r in self.fetched]


class _Logging(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, log: Any) -> None:
        self._inner, self._log = inner, log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._log(request)
        return self._inner.handle_request(request)


class _Mangle(httpx.BaseTransport):
    """Answers of one ACI document path rewritten with an emulator JSON fault."""

    def __init__(self, path_part: str, fault: Any) -> None:
        self._inner = httpx.HTTPTransport()
        self._part, self._fault = path_part, fault

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if self._part not in request.url.path or response.status_code != 200:
            return response
        body = with_json_fault(response.read(), self._fault)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(200, headers=headers, content=body)


@pytest.fixture
def rig(aci_emu: Emulator, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(aci_emu, tmp_path)
    yield r
    r.verifier.close()


def _verdict(receipt: Receipt) -> tuple[str, tuple[str, ...]]:
    return receipt.result.status.value, tuple(r.value for r in receipt.result.reasons)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_clean_exchanges_verify_under_aci(rig: Rig, aci_emu: Emulator, stream: bool) -> None:
    receipt = rig.chat(stream=stream)
    result = receipt.result
    assert _verdict(receipt) == ("verified", ()), result.detail
    assert (result.protocol, result.signed_by) == ("aci", "gateway")
    aci = result.aci
    assert aci is not None and aci.receipt_id is not None and aci.receipt_id.startswith("rcpt-")
    assert aci.keyset_digest == aci_emu.keyset_digest
    assert aci.upstream is not None and aci.upstream.result == "verified"
    assert aci.app_id and aci.compose_hash and aci.kms_root and aci.served_at
    # the legacy endpoints were never asked
    assert not [p for p in rig.paths() if "/signature/" in p or "/attestation/report" in p]
    assert receipt.aci is not None and receipt.aci.receipt_id == aci.receipt_id
    assert rig.store.get(receipt.receipt_id) == receipt
    assert len(rig.store) == 1


def test_the_gateway_identity_is_cached_per_keyset_digest(rig: Rig) -> None:
    for _ in range(3):
        assert _verdict(rig.chat()) == ("verified", ())
    assert rig.paths().count("/v1/aci/attestation") == 1
    assert rig.paths().count("/v1/aci/receipts/" + "x") == 0
    assert len([p for p in rig.paths() if p.startswith("/v1/aci/receipts/")]) == 3
    assert len(rig.store) == 3


def test_async_verification_is_the_same_flow(aci_emu: Emulator, tmp_path: Path) -> None:
    async def run() -> Receipt:
        time = FakeTime()
        verifier = RedpillVerifier(
            base_url=aci_emu.base_url, api_key=KEY, trust=aci_emu.trust,
            asleep=time.asleep, monotonic=time.monotonic,
        )  # fmt: skip
        client = openai.AsyncOpenAI(
            base_url=aci_emu.base_url, api_key=KEY, http_client=verifier.async_http_client()
        )
        tag = verifier.recorder.new_tag()
        stream = await client.chat.completions.create(
            model=MODEL, messages=MSG, stream=True, extra_headers={CAPTURE_HEADER: tag}
        )  # type: ignore[call-overload]
        async for _ in stream:
            pass
        receipt = await verifier.averify_exchange(verifier.recorder.take(tag))
        await verifier.aclose()
        return receipt

    receipt = asyncio.run(run())
    assert _verdict(receipt) == ("verified", ()) and receipt.result.protocol == "aci"


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (Faults(receipt_body_hash="request"), ("failed", ("REQUEST_HASH_MISMATCH",))),
        (Faults(receipt_body_hash="response"), ("failed", ("RESPONSE_HASH_MISMATCH",))),
        (Faults(tamper_response="alter"), ("failed", ("RESPONSE_HASH_MISMATCH",))),
        (Faults(receipt_bad_signature=True), ("failed", ("SIGNATURE_INVALID",))),
        (Faults(receipt_foreign_key=True), ("failed", ("SIGNER_NOT_ATTESTED",))),
        (Faults(keyset_digest_mismatch=True), ("failed", ("KEYSET_DIGEST_MISMATCH",))),
        (Faults(ignore_nonce=True), ("failed", ("REPORT_DATA_MISMATCH", "NONCE_MISMATCH"))),
        (Faults(quote_other_statement=True), ("failed", ("REPORT_DATA_MISMATCH",))),
        (Faults(keyset_expired=True), ("failed", ("KEYSET_EXPIRED",))),
        (Faults(custody_unknown_root=True), ("failed", ("KEY_CUSTODY_INVALID",))),
        (Faults(receipt_mismatch="chat_id"), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(receipt_mismatch="endpoint"), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(receipt_mismatch="model"), ("failed", ("MODEL_MISMATCH",))),
        (Faults(receipt_mismatch="receipt_id"), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(upstream_not_required=True), ("verified", ())),  # no constraint sent: a flag
        (Faults(stale_served_at=True), ("failed", ("RECEIPT_MISMATCH",))),
        (Faults(upstream_failed=True), ("failed", ("UPSTREAM_NOT_VERIFIED",))),
        (Faults(missing_receipt_id=True), ("failed", ("RECEIPT_MISSING",))),
        (Faults(receipt_unauthorized=True), ("unverifiable", ("RECEIPT_UNAVAILABLE",))),
        (Faults(json_fault="duplicate_key"), ("failed", ("DUPLICATE_JSON_KEY",))),
        (Faults(json_fault="deep"), ("unverifiable", ("MALFORMED_RESPONSE",))),
    ],
    ids=lambda v: v.to_header() if isinstance(v, Faults) else None,
)
def test_each_fault_gives_its_reason_through_the_wire(
    rig: Rig, aci_emu: Emulator, faults: Faults, expected: tuple[str, tuple[str, ...]]
) -> None:
    aci_emu.set_faults(faults)
    receipt = rig.chat()
    assert _verdict(receipt) == expected, receipt.result.detail
    assert receipt.result.protocol == "aci"
    assert len(rig.store) == 1


def test_upstream_not_required_fails_when_we_sent_the_constraint(
    rig: Rig, aci_emu: Emulator
) -> None:
    aci_emu.set_faults(Faults(upstream_not_required=True))
    receipt = rig.chat(provider={"aci_verified": True})
    assert _verdict(receipt) == ("failed", ("UPSTREAM_NOT_VERIFIED",)), receipt.result.detail
    assert receipt.aci is not None and receipt.aci.sent_aci_constraint is True


def test_a_non_tee_model_is_served_unverified_and_refused_under_the_constraint(rig: Rig) -> None:
    served = rig.chat(model=NON_TEE)
    assert _verdict(served) == ("failed", ("UPSTREAM_NOT_VERIFIED",))
    refused = rig.chat(model=NON_TEE, provider={"aci_verified": True})
    assert _verdict(refused) == ("unverifiable", ("UPSTREAM_REFUSED",)), refused.result.detail
    # the refusal receipt itself was fetched and verified
    assert refused.aci is not None and refused.aci.status_code == 503
    assert refused.aci.receipt is not None
    assert refused.result.checks["signature"] == "pass"
    assert len(rig.store) == 2


def test_a_receipt_404_past_the_budget_is_unavailable(rig: Rig, aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(receipt_not_ready=10**9))
    receipt = rig.chat()
    assert _verdict(receipt) == ("unverifiable", ("RECEIPT_UNAVAILABLE",))
    assert receipt.aci is not None and receipt.aci.receipt_attempts > 3
    assert sum(rig.time.sleeps) <= VerificationPolicy().signature_deadline


def test_a_late_receipt_verifies_after_retries(rig: Rig, aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(receipt_not_ready=2))
    receipt = rig.chat(stream=True)
    assert _verdict(receipt) == ("verified", ())
    assert receipt.aci is not None and receipt.aci.receipt_attempts == 3
    assert len(rig.time.sleeps) == 2


def test_a_401_is_final_at_once_with_its_detail(rig: Rig, aci_emu: Emulator) -> None:
    aci_emu.set_faults(Faults(receipt_unauthorized=True))
    receipt = rig.chat()
    assert receipt.aci is not None and receipt.aci.receipt_attempts == 1
    assert "401" in (receipt.result.detail or "")


def test_session_mismatch_when_the_policy_checks_sessions(
    aci_emu: Emulator, tmp_path: Path
) -> None:
    rig = Rig(aci_emu, tmp_path, policy=VerificationPolicy(check_session=True))
    clean = rig.chat()
    assert _verdict(clean) == ("verified", ()), clean.result.detail
    assert clean.aci is not None and clean.aci.session is not None
    assert clean.result.checks["session"] == "pass"
    aci_emu.set_faults(Faults(session_id_mismatch=True))
    receipt = rig.chat()
    assert _verdict(receipt) == ("failed", ("SESSION_MISMATCH",))
    rig.verifier.close()


def test_sessions_are_not_fetched_unless_the_policy_asks(rig: Rig) -> None:
    rig.chat()
    assert not [p for p in rig.paths() if p.startswith("/v1/aci/sessions")]


def test_keyset_rotation_between_chat_and_receipt(rig: Rig, aci_emu: Emulator) -> None:
    """Warm cache: the response's keyset was attested before, so its receipt verifies although
    the gateway rotated meanwhile; the next response names the new keyset and is attested anew."""
    assert _verdict(rig.chat()) == ("verified", ())
    before = aci_emu.keyset_digest
    aci_emu.set_faults(Faults(rotate_keyset=True))
    rotated = rig.chat()
    aci_emu.clear_faults()
    assert _verdict(rotated) == ("verified", ())
    assert rotated.result.aci is not None and rotated.result.aci.keyset_digest == before
    after = rig.chat()
    assert _verdict(after) == ("verified", ())
    assert after.result.aci is not None and after.result.aci.keyset_digest != before
    assert rig.paths().count("/v1/aci/attestation") == 2


def test_keyset_rotation_with_a_cold_cache_attests_twice_then_fails_the_old_receipt(
    rig: Rig, aci_emu: Emulator
) -> None:
    """Cold cache: the response names keyset A, the gateway now attests only B. It is attested
        once more (a rotation may be under way), then judged: A's receipt names another keyset and
    its key id now holds B's key."""
    aci_emu.set_faults(Faults(rotate_keyset=True))
    receipt = rig.chat()
    assert _verdict(receipt) == ("failed", ("KEYSET_DIGEST_MISMATCH", "SIGNATURE_INVALID"))
    assert rig.paths().count("/v1/aci/attestation") == 2


@pytest.mark.parametrize("document", ["/v1/aci/attestation", "/v1/aci/receipts/", "/sessions/"])
@pytest.mark.parametrize(
    ("fault", "expected"),
    [("duplicate_key", ("failed", ("DUPLICATE_JSON_KEY",))), ("deep", None)],
)
def test_json_traps_in_every_document(
    aci_emu: Emulator,
    tmp_path: Path,
    document: str,
    fault: str,
    expected: tuple[str, tuple[str, ...]] | None,
) -> None:
    policy = VerificationPolicy(check_session=True)
    rig = Rig(aci_emu, tmp_path, policy=policy, transport=_Mangle(document, fault))
    receipt = rig.chat()
    if expected is None:  # over-deep: unreadable, never a pass
        assert receipt.result.status is Status.UNVERIFIABLE
        assert Reason.MALFORMED_RESPONSE in receipt.result.reasons, receipt.result.detail
    else:
        assert _verdict(receipt) == expected, receipt.result.detail
    assert len(rig.store) == 1
    rig.verifier.close()


def test_a_gateway_error_is_upstream_http_error_with_nothing_fetched(
    rig: Rig, aci_emu: Emulator
) -> None:
    receipt = rig.chat(model="no/such-model")
    assert receipt.result.status is Status.UNVERIFIABLE
    assert receipt.result.reasons == (Reason.UPSTREAM_HTTP_ERROR,)
    assert not [p for p in rig.paths() if p.startswith("/v1/aci/")]


def test_an_aci_response_is_never_judged_by_the_legacy_path(rig: Rig, aci_emu: Emulator) -> None:
    """Even a model outside the legacy TEE prefixes, and even when its receipt is missing: the
    ACI headers choose the protocol, the legacy signature alias is never asked."""
    aci_emu.set_faults(Faults(missing_receipt_id=True))
    receipt = rig.chat(model=NON_TEE)
    assert receipt.result.protocol == "aci"
    assert _verdict(receipt) == ("failed", ("RECEIPT_MISSING",))
    assert not [p for p in rig.paths() if "/signature/" in p or "/attestation/report" in p]


def test_the_constraint_sent_is_what_the_receipt_matches(rig: Rig) -> None:
    extras = rig.verifier.request_extras("strict")
    receipt = rig.chat(**extras)
    assert _verdict(receipt) == ("verified", ())
    assert receipt.request_body is not None
    assert json.loads(receipt.request_body)["provider"] == {"aci_verified": True}
    assert receipt.aci is not None and receipt.aci.sent_aci_constraint is True


def test_attest_gateway_shows_the_whole_chain_with_progress(rig: Rig, aci_emu: Emulator) -> None:
    steps: list[str] = []
    attestation = rig.verifier.attest_gateway(progress=steps.append)
    assert steps == ["report", "collateral", "verify"]
    assert attestation.passed, attestation.verdict and attestation.verdict.detail
    verdict = attestation.verdict
    assert verdict is not None and verdict.identity is not None and verdict.td is not None
    assert attestation.keyset_digest == aci_emu.keyset_digest
    assert verdict.identity.app_id in aci_emu.trust.aci_app_ids
    assert verdict.kms_root in aci_emu.trust.kms_root_pubkeys
    assert verdict.tcb_status and verdict.report.source_commit and verdict.report.keyset.not_after
    assert attestation.report is not None and attestation.collateral_json is not None
    again = asyncio.run(rig.verifier.aattest_gateway())
    assert again.passed and again.nonce != attestation.nonce  # never cached


def test_the_store_lists_aci_receipts_by_protocol_and_upstream_provider(
    aci_emu: Emulator, tmp_path: Path
) -> None:
    """The provider is the session record's upstream name: known when the session is fetched
    (``check_session`` here), ``None`` otherwise."""
    rig = Rig(aci_emu, tmp_path, policy=VerificationPolicy(check_session=True))
    verified = rig.chat()
    refused = rig.chat(model=NON_TEE, provider={"aci_verified": True})
    rig.verifier.close()
    aci = verified.result.aci
    assert aci is not None and aci.upstream is not None and aci.upstream.provider
    assert aci.upstream.claims.get("tee_attested")
    assert [r.receipt_id for r in rig.store.list(protocol="legacy")] == []
    assert {r.receipt_id for r in rig.store.list(protocol="aci")} == {
        verified.receipt_id,
        refused.receipt_id,
    }
    listed = rig.store.list(provider=aci.upstream.provider)
    assert [r.receipt_id for r in listed] == [verified.receipt_id]
    assert listed[0] == verified  # the ACI evidence survives the store exactly


class _Status(httpx.BaseTransport):
    """Receipt lookups answered with ``status`` (and ``Retry-After: 1``); the rest forwarded."""

    def __init__(self, status: int) -> None:
        self._inner, self._status = httpx.HTTPTransport(), status

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/aci/receipts/"):
            return httpx.Response(self._status, headers={"Retry-After": "1"})
        return self._inner.handle_request(request)


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "RATE_LIMITED"), (503, "UPSTREAM_HTTP_ERROR")]
)
def test_a_receipt_that_never_comes_names_why(
    aci_emu: Emulator, tmp_path: Path, status: int, reason: str
) -> None:
    rig = Rig(aci_emu, tmp_path, transport=_Status(status))
    receipt = rig.chat()
    rig.verifier.close()
    assert _verdict(receipt) == ("unverifiable", (reason,))
    assert receipt.aci is not None and receipt.aci.receipt_attempts > 1
    if status == 429:
        assert rig.time.sleeps and all(s >= 1.0 for s in rig.time.sleeps)  # Retry-After honoured
    assert receipt.result.checks["key_custody"] == "pass"  # the gateway was still attested
