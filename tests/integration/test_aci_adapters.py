"""``ChatRedpill`` and ``Redpill`` against the emulator's default protocol, ACI (as api.redpill.ai).

Every call style gives ``verified`` with ``protocol: "aci"``, signed by the gateway, and exactly one
receipt per exchange; strict mode sends the ``aci_verified`` constraint (in the bytes the receipt
binds), refuses a model the gateway lists as non-TEE before sending, and turns the gateway's signed
refusal into ``VerificationFailed`` (``UPSTREAM_REFUSED``) carrying the SDK's error; annotate on a
non-TEE model gives ``UPSTREAM_NOT_VERIFIED``; faults end to end with their exact codes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.tools import tool
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool

from redpill_integrations import ReceiptStore, RedpillVerifier, VerificationFailed
from redpill_integrations.emulator import Emulator, Faults, Reply
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.langchain import ChatRedpill
from redpill_integrations.llama_index import VERIFICATION_KEY, Redpill
from redpill_integrations.results import Reason
from tests.support import FakeTime

MODEL = "phala/gpt-oss-120b"
NON_TEE = "openai/gpt-4o-mini"
MSGS = [ChatMessage(role="user", content="hi")]
CONSTRAINT = {"provider": {"aci_verified": True}}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18C in {city}"


class _UnflaggedListing(httpx.BaseTransport):
    """The verifier's own fetches, with ``is_tee`` removed from the model listing: a gateway
    whose listing says nothing about a model, so only the gateway itself can refuse it."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not request.url.path.endswith("/models"):
            return response
        response.read()
        data = json.loads(response.content)
        for entry in data.get("data", []):
            entry.pop("is_tee", None)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers.pop("content-encoding", None)
        return httpx.Response(response.status_code, headers=headers, json=data)


@pytest.fixture
def store(tmp_path: Path) -> ReceiptStore:
    return ReceiptStore(tmp_path / "receipts.sqlite3")


@pytest.fixture
def verifier(aci_emu: Emulator, store: ReceiptStore) -> Callable[..., RedpillVerifier]:
    def build(**kwargs: Any) -> RedpillVerifier:
        clock = FakeTime()
        return RedpillVerifier(
            base_url=aci_emu.base_url,
            api_key=aci_emu.api_key,
            trust=aci_emu.trust,
            receipt_store=store,
            sleep=clock.sleep,
            asleep=clock.asleep,
            monotonic=clock.monotonic,
            **kwargs,
        )

    return build


@pytest.fixture
def chat(aci_emu: Emulator, verifier: Callable[..., RedpillVerifier]) -> Callable[..., ChatRedpill]:
    def build(**kwargs: Any) -> ChatRedpill:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("verifier", verifier())
        return ChatRedpill(base_url=aci_emu.base_url, api_key=aci_emu.api_key, **kwargs)

    return build


@pytest.fixture
def llm(aci_emu: Emulator, verifier: Callable[..., RedpillVerifier]) -> Callable[..., Redpill]:
    def build(**kwargs: Any) -> Redpill:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("verifier", verifier())
        return Redpill(api_key=aci_emu.api_key, api_base=aci_emu.base_url, **kwargs)

    return build


def _assert_aci_verified(verdict: dict[str, Any]) -> None:
    assert (verdict["status"], verdict["reasons"]) == ("verified", [])
    assert (verdict["protocol"], verdict["signed_by"]) == ("aci", "gateway")
    aci = verdict["aci"]
    assert aci["receipt_id"].startswith("rcpt-") and aci["keyset_digest"].startswith("sha256:")
    assert aci["upstream"]["result"] == "verified" and aci["upstream"]["required"] is True
    assert set(verdict["checks"].values()) <= {"pass", "not_checked"}
    assert verdict["checks"]["upstream"] == verdict["checks"]["key_custody"] == "pass"


def _one_receipt_each(store: ReceiptStore, verdicts: list[dict[str, Any]]) -> None:
    ids = [v["receipt_id"] for v in verdicts]
    assert len(set(ids)) == len(ids) == len(store)
    for receipt_id in ids:
        receipt = store.get(receipt_id)
        assert receipt is not None and receipt.result.protocol == "aci"


def _sent(store: ReceiptStore, verdict: dict[str, Any]) -> dict[str, Any]:
    receipt = store.get(verdict["receipt_id"])
    assert receipt is not None and receipt.request_body is not None
    sent: dict[str, Any] = json.loads(receipt.request_body)
    return sent


# -- every call style verifies ---------------------------------------------------------------------


def test_chat_redpill_call_styles_verify_under_aci(
    aci_emu: Emulator, chat: Callable[..., ChatRedpill], store: ReceiptStore
) -> None:
    aci_emu.script(replies=[Reply.tool_call("get_weather", {"city": "Paris"})])
    llm = chat()
    verdicts = []
    asked = llm.bind_tools([get_weather]).invoke("Weather in Paris?")
    assert asked.tool_calls[0]["name"] == "get_weather"
    verdicts.append(asked.response_metadata["redpill_verification"])
    verdicts.append(llm.invoke("hello").response_metadata["redpill_verification"])
    chunks = list(llm.stream("stream me"))
    carrying = [c for c in chunks if "redpill_verification" in c.response_metadata]
    assert carrying == chunks[-1:]  # exactly one chunk, the last, carries it
    verdicts.append(carrying[0].response_metadata["redpill_verification"])

    async def both() -> list[dict[str, Any]]:  # one event loop: the async client lives in it
        got = [(await llm.ainvoke("async")).response_metadata["redpill_verification"]]
        last = None
        async for chunk in llm.astream("async stream"):
            last = chunk
        assert last is not None
        got.append(last.response_metadata["redpill_verification"])
        return got

    verdicts += asyncio.run(both())
    verdicts += [m.response_metadata["redpill_verification"] for m in llm.batch(["a", "b"])]
    for verdict in verdicts:
        _assert_aci_verified(verdict)
        assert _sent(store, verdict)["provider"] == CONSTRAINT["provider"]  # strict sent it
    _one_receipt_each(store, verdicts)


def test_redpill_call_styles_verify_under_aci(
    aci_emu: Emulator, llm: Callable[..., Redpill], store: ReceiptStore
) -> None:
    aci_emu.script(replies=[Reply.tool_call("weather", {"city": "Oslo"})])
    model = llm()

    def weather(city: str) -> str:
        """Current weather for a city."""
        return f"18C in {city}"

    verdicts = []
    asked = model.chat_with_tools([FunctionTool.from_defaults(fn=weather)], user_msg="Oslo?")
    calls = model.get_tool_calls_from_response(asked, error_on_no_tool_call=True)
    assert calls[0].tool_name == "weather"
    verdicts.append(asked.additional_kwargs[VERIFICATION_KEY])
    verdicts.append(model.chat(MSGS).additional_kwargs[VERIFICATION_KEY])
    verdicts.append(model.complete("complete me").additional_kwargs[VERIFICATION_KEY])
    streamed = list(model.stream_chat(MSGS))
    carrying = [r for r in streamed if VERIFICATION_KEY in r.additional_kwargs]
    assert carrying == streamed[-1:]
    verdicts.append(carrying[0].additional_kwargs[VERIFICATION_KEY])
    verdicts.append(asyncio.run(model.achat(MSGS)).additional_kwargs[VERIFICATION_KEY])

    async def astream() -> dict[str, Any]:
        last = None
        async for response in await model.astream_chat(MSGS):
            last = response
        assert last is not None
        value: dict[str, Any] = last.additional_kwargs[VERIFICATION_KEY]
        return value

    verdicts.append(asyncio.run(astream()))
    for verdict in verdicts:
        _assert_aci_verified(verdict)
        assert _sent(store, verdict)["provider"] == CONSTRAINT["provider"]
    _one_receipt_each(store, verdicts)


# -- non-TEE models ------------------------------------------------------------------------------


def test_strict_refuses_a_model_the_gateway_lists_as_not_tee_before_sending(
    aci_emu: Emulator, chat: Callable[..., ChatRedpill], llm: Callable[..., Redpill]
) -> None:
    before = aci_emu.stats.chat_requests
    with pytest.raises(ConfigurationError) as lc:
        chat(model=NON_TEE).invoke("hello")
    with pytest.raises(ConfigurationError) as li:
        asyncio.run(llm(model=NON_TEE).achat(MSGS))
    for err in (lc.value, li.value):
        assert err.reason is Reason.MODEL_NOT_TEE and "is_tee: false" in str(err)
    assert aci_emu.stats.chat_requests == before  # nothing was sent


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_strict_gateway_refusal_is_verification_failed_with_its_receipt(
    chat: Callable[..., ChatRedpill],
    llm: Callable[..., Redpill],
    verifier: Callable[..., RedpillVerifier],
    store: ReceiptStore,
    stream: bool,
) -> None:
    lc = chat(model=NON_TEE, verifier=verifier(transport=_UnflaggedListing()))
    li = llm(model=NON_TEE, verifier=verifier(transport=_UnflaggedListing()))
    calls: list[Callable[[], Any]] = [
        (lambda: list(lc.stream("hello"))) if stream else (lambda: lc.invoke("hello")),
        (lambda: list(li.stream_chat(MSGS))) if stream else (lambda: li.chat(MSGS)),
    ]
    verdicts = []
    for call in calls:
        with pytest.raises(VerificationFailed) as err:
            call()
        result = err.value.result
        assert (result.status.value, result.reasons) == ("unverifiable", (Reason.UPSTREAM_REFUSED,))
        assert result.protocol == "aci" and result.aci is not None
        assert isinstance(err.value.response, openai.APIStatusError)
        assert err.value.response.status_code == 503
        assert err.value.__cause__ is err.value.response
        verdicts.append(result.to_dict())
        assert _sent(store, result.to_dict())["provider"] == CONSTRAINT["provider"]
    _one_receipt_each(store, verdicts)


def test_annotate_on_a_non_tee_model_is_upstream_not_verified(
    chat: Callable[..., ChatRedpill], llm: Callable[..., Redpill], store: ReceiptStore
) -> None:
    message = chat(model=NON_TEE, verification="annotate").invoke("hello")
    response = llm(model=NON_TEE, verification="annotate").chat(MSGS)
    verdicts = [message.response_metadata["redpill_verification"]]
    verdicts.append(response.additional_kwargs[VERIFICATION_KEY])
    assert message.content and response.message.content  # the content is delivered
    for verdict in verdicts:
        assert (verdict["status"], verdict["reasons"]) == ("failed", ["UPSTREAM_NOT_VERIFIED"])
        assert verdict["protocol"] == "aci"
        assert verdict["aci"]["upstream"]["result"] == "failed"
        assert verdict["aci"]["upstream"]["required"] is False
        assert "provider" not in _sent(store, verdict)  # annotate sends no constraint
    _one_receipt_each(store, verdicts)


# -- faults end to end --------------------------------------------------------------------------

FAULTS = [
    (Faults(receipt_body_hash="response"), "failed", (Reason.RESPONSE_HASH_MISMATCH,)),
    (Faults(receipt_bad_signature=True), "failed", (Reason.SIGNATURE_INVALID,)),
    (Faults(missing_receipt_id=True), "failed", (Reason.RECEIPT_MISSING,)),
    (Faults(stale_served_at=True), "failed", (Reason.RECEIPT_MISMATCH,)),
    (Faults(upstream_failed=True), "failed", (Reason.UPSTREAM_NOT_VERIFIED,)),
    (Faults(custody_unknown_root=True), "failed", (Reason.KEY_CUSTODY_INVALID,)),
    (Faults(receipt_not_ready=10**9), "unverifiable", (Reason.RECEIPT_UNAVAILABLE,)),
]


@pytest.mark.parametrize(
    ("faults", "status", "reasons"), FAULTS, ids=[str(f[2][0].value) for f in FAULTS]
)
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_faults_through_both_adapters_strict(
    aci_emu: Emulator,
    chat: Callable[..., ChatRedpill],
    llm: Callable[..., Redpill],
    store: ReceiptStore,
    faults: Faults,
    status: str,
    reasons: tuple[Reason, ...],
    stream: bool,
) -> None:
    aci_emu.set_faults(faults)
    lc, li = chat(), llm()
    calls: list[Callable[[], Any]] = [
        (lambda: list(lc.stream("hello"))) if stream else (lambda: lc.invoke("hello")),
        (lambda: list(li.stream_chat(MSGS))) if stream else (lambda: li.chat(MSGS)),
    ]
    verdicts = []
    for call in calls:
        with pytest.raises(VerificationFailed) as err:
            call()
        result = err.value.result
        assert (result.status.value, result.reasons) == (status, reasons)
        assert result.protocol == "aci"
        assert err.value.response is not None  # nothing is lost: the content is carried
        verdicts.append(result.to_dict())
    _one_receipt_each(store, verdicts)
