"""The verifier-level gateway API (``gateway``, ``model_info``, ``precheck``, ``request_extras``)
against both emulator protocols on loopback, and the probe's failure modes with MockTransport."""

from __future__ import annotations

import asyncio

import httpx

from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import Reason
from redpill_integrations.wire import RedpillVerifier
from redpill_integrations.wire.gateway import GatewayInfo, ModelInfo, parse_listing

KEY = "sk-gateway-info-test"
CONSTRAINT = {"provider": {"aci_verified": True}}


def _verifier(emu: Emulator, **kw: object) -> RedpillVerifier:
    return RedpillVerifier(base_url=emu.base_url, api_key=KEY, trust=emu.trust, **kw)  # type: ignore[arg-type]


def test_aci_gateway_is_detected_with_its_keyset_digest(aci_emu: Emulator) -> None:
    with _verifier(aci_emu) as v:
        assert v.gateway() == GatewayInfo(protocol="aci", keyset_digest=aci_emu.keyset_digest)


def test_legacy_gateway_is_legacy(emu: Emulator) -> None:
    with _verifier(emu) as v:
        assert v.gateway() == GatewayInfo(protocol="legacy")


def test_model_info_reads_is_tee_per_model(aci_emu: Emulator) -> None:
    with _verifier(aci_emu) as v:
        assert v.model_info("phala/gpt-oss-120b") == ModelInfo(id="phala/gpt-oss-120b", is_tee=True)
        assert v.model_info("openai/gpt-4o-mini") == ModelInfo(
            id="openai/gpt-4o-mini", is_tee=False
        )
        assert v.model_info("no/such-model") == ModelInfo(id="no/such-model", is_tee=None)
        ids = {m.id for m in v.models()}
        assert {"phala/gpt-oss-120b", "openai/gpt-4o-mini"} <= ids


def test_precheck_under_aci_follows_the_listing_not_the_prefix(aci_emu: Emulator) -> None:
    with _verifier(aci_emu) as v:
        assert v.precheck("phala/gpt-oss-120b") is None
        assert v.precheck("openai/gpt-4o-mini") is Reason.MODEL_NOT_TEE
        assert v.precheck("no/such-model") is None  # unknown: the receipt decides
        assert asyncio.run(v.aprecheck("openai/gpt-4o-mini")) is Reason.MODEL_NOT_TEE


def test_precheck_under_legacy_is_the_prefix_rule(emu: Emulator) -> None:
    with _verifier(emu) as v:
        assert v.precheck("phala/gpt-oss-120b") is None
        assert v.precheck("openai/gpt-4o-mini") is Reason.MODEL_NOT_TEE
        assert v.precheck("no/such-model") is Reason.MODEL_NOT_TEE


def test_request_extras_only_in_strict_mode_on_aci_with_the_policy_switch(
    aci_emu: Emulator, emu: Emulator
) -> None:
    with _verifier(aci_emu) as v:
        assert v.request_extras("strict") == CONSTRAINT
        assert v.request_extras("warn") == {}
        assert asyncio.run(v.arequest_extras("strict")) == CONSTRAINT
    off = VerificationPolicy(send_aci_constraint=False)
    with _verifier(aci_emu, policy=off) as v:
        assert v.request_extras("strict") == {}
    with _verifier(emu) as v:
        assert v.request_extras("strict") == {}


def _counting(handler):  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return handler(request)  # type: ignore[no-any-return]

    return seen, httpx.MockTransport(wrapped)


def test_probe_is_cached_for_the_policy_ttl() -> None:
    now = [0.0]

    def answer(request: httpx.Request) -> httpx.Response:
        body = {"data": [{"id": "a/b", "is_tee": True}]}
        return httpx.Response(200, json=body, headers={"X-ACI-Version": "aci/1"})

    seen, transport = _counting(answer)
    policy = VerificationPolicy(attestation_cache_ttl=60.0)
    with RedpillVerifier(
        base_url="https://gw.example/v1", api_key=KEY, policy=policy, transport=transport,
        monotonic=lambda: now[0],
    ) as v:  # fmt: skip
        assert v.gateway().protocol == "aci"
        assert v.model_info("a/b").is_tee is True
        assert seen == ["/v1/models"]
        now[0] = 61.0
        assert v.gateway() == GatewayInfo(protocol="aci", keyset_digest=None)
        assert seen == ["/v1/models", "/v1/models"]


def test_root_probe_detects_aci_when_the_listing_does_not() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            return httpx.Response(200, json={"api_version": "aci/1"})
        return httpx.Response(404)

    seen, transport = _counting(answer)
    with RedpillVerifier(base_url="https://gw.example/v1", api_key=KEY, transport=transport) as v:
        assert v.gateway() == GatewayInfo(protocol="aci")
        assert seen == ["/v1/models", "/"]


def test_unreachable_gateway_is_legacy_with_a_problem_and_not_cached() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    seen, transport = _counting(answer)
    with RedpillVerifier(base_url="https://gw.example/v1", api_key=KEY, transport=transport) as v:
        info = v.gateway()
        assert info.protocol == "legacy" and info.problem and "ConnectError" in info.problem
        assert v.request_extras("strict") == {}
        assert v.precheck("openai/gpt-4o-mini") is Reason.MODEL_NOT_TEE
        assert seen == ["/v1/models", "/"] * 3


def test_listing_parser_is_strict_about_what_it_claims() -> None:
    body = b'{"data":[{"id":"a","is_tee":true},{"id":"b","is_tee":"yes"},{"id":3},"x",{"id":"c"}]}'
    assert parse_listing(body) == {
        "a": ModelInfo(id="a", is_tee=True),
        "b": ModelInfo(id="b", is_tee=None),
        "c": ModelInfo(id="c", is_tee=None),
    }
    assert parse_listing(b'{"data":[{"id":"a","is_tee":false,"is_tee":true}]}') == {}
    assert parse_listing(b"[" * 10000) == {}
