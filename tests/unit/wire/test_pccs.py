"""The PCCS client against recorded Intel PCS answers: it must rebuild the recorded collateral."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dcap_qvl
import httpx
import pytest

from redpill_integrations.errors import MalformedEvidence
from redpill_integrations.verify import parse_report, quote_fmspc, quote_pck_ca
from redpill_integrations.wire.cache import SingleFlightCache
from redpill_integrations.wire.flow import run_sync
from redpill_integrations.wire.http import Endpoints, make_client, send_sync
from redpill_integrations.wire.pccs import collateral_flow, json_member_text

HERE = Path(__file__).parent / "vectors"
REPORT = Path(__file__).parents[2] / "vectors" / "teep_neardirect_attestation_report.json"
PCCS = "https://pccs.test"
WHEN = datetime(2026, 6, 29, 2, 6, 40, tzinfo=UTC)


def recorded(name: str) -> tuple[bytes, dict[str, str]]:
    body = (HERE / name).read_bytes()
    meta = json.loads((HERE / (name.rsplit(".", 1)[0] + ".meta.json")).read_text())
    return body, {k: v[0] for k, v in meta["headers"].items()}


def pccs_handler(seen: list[httpx.URL]):  # type: ignore[no-untyped-def]
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        assert "authorization" not in request.headers  # the API key never goes to the PCCS
        path, q = request.url.path, request.url.params
        if path == "/sgx/certification/v4/pckcrl":
            assert (q["ca"], q["encoding"]) == ("platform", "der")
            body, headers = recorded("teep_neardirect_intel_pcs_pckcrl.bin")
        elif path == "/tdx/certification/v4/tcb":
            assert q["fmspc"] == "90C06F000000"
            body, headers = recorded("teep_neardirect_intel_pcs_tcb.json")
        elif path == "/tdx/certification/v4/qe/identity":
            assert q["update"] == "standard"
            body, headers = recorded("teep_neardirect_intel_pcs_qe_identity.json")
        elif path == "/sgx/certification/v4/rootcacrl":
            body = (HERE / "teep_intel_sgx_root_ca_crl.der").read_bytes().hex().encode()
            headers = {}
        else:
            return httpx.Response(404)
        headers.pop("Content-Length", None)
        return httpx.Response(200, content=body, headers=headers)

    return handle


def fetch(seen: list[httpx.URL], cache: SingleFlightCache, quote: bytes):  # type: ignore[no-untyped-def]
    endpoints = Endpoints(base_url="https://api.test/v1", api_key=None, extra_urls=(PCCS,))
    client = make_client(httpx.MockTransport(pccs_handler(seen)))
    flow = collateral_flow(
        endpoints, pccs_url=PCCS, fmspc=quote_fmspc(quote), ca=quote_pck_ca(quote), now=lambda: WHEN
    )
    return run_sync(
        flow, send=lambda f: send_sync(client, endpoints, f), sleep=lambda s: None, cache=cache
    )


def test_collateral_rebuilt_from_recorded_pcs_answers_verifies_real_quote() -> None:
    quote = parse_report(REPORT.read_bytes()).nodes[0].intel_quote
    seen: list[httpx.URL] = []
    cache = SingleFlightCache(monotonic=lambda: 0.0)
    got = fetch(seen, cache, quote)
    assert got.json is not None, got.problem
    expected = json.loads((HERE / "teep_neardirect_collateral_v3.json").read_text())
    assert json.loads(got.json) == expected
    report = dcap_qvl.verify(
        quote, dcap_qvl.QuoteCollateralV3.from_json(got.json), int(WHEN.timestamp())
    )
    assert report.status == "UpToDate"
    assert got.next_update is not None and got.next_update > WHEN
    assert {u.host for u in seen} == {"pccs.test"} and len(seen) == 4
    fetch(seen, cache, quote)  # cached per FMSPC within validity
    assert len(seen) == 4


def test_json_member_text_is_the_exact_substring() -> None:
    body = '{ "signature" : "ab", "tcbInfo" :  {"b": 1,  "a": [1, 2]} }'
    assert json_member_text(body, "tcbInfo") == '{"b": 1,  "a": [1, 2]}'
    with pytest.raises(MalformedEvidence):
        json_member_text('{"x": 1}', "tcbInfo")
    with pytest.raises(MalformedEvidence):
        json_member_text('{"tcbInfo": {', "tcbInfo")


def test_pccs_failure_is_reported_not_raised() -> None:
    quote = parse_report(REPORT.read_bytes()).nodes[0].intel_quote
    endpoints = Endpoints(base_url="https://api.test/v1", api_key=None, extra_urls=(PCCS,))
    client = make_client(httpx.MockTransport(lambda r: httpx.Response(503)))
    flow = collateral_flow(
        endpoints, pccs_url=PCCS, fmspc=quote_fmspc(quote), ca="platform", now=lambda: WHEN
    )
    got = run_sync(
        flow,
        send=lambda f: send_sync(client, endpoints, f),
        sleep=lambda s: None,
        cache=SingleFlightCache(),
    )
    assert got.json is None and got.problem == "PCCS pck: HTTP 503"
