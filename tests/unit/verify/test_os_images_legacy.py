"""``data/os_images_legacy.json`` is re-derived, entry by entry, from the vectors.

For every real legacy report in ``tests/vectors`` that carries a TDX quote *and* an event log, the
quote's MRTD, RTMR1 and RTMR2 and the measured ``os-image-hash`` runtime event (RTMR3) are read,
the event log must replay to the quote's RTMRs, and the image name comes from ``info.vm_config``
(``image``) when the report has one. Nodes with the same measurements are one entry whose
``source`` lists every vector. Reports without an event log (the Chutes-format one, dcap-qvl's
sample quote) cannot contribute.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterator
from typing import Any

from redpill_integrations.verify.eventlog import check_event_log
from redpill_integrations.verify.report import NodeAttestation, parse_report
from redpill_integrations.verify.tdx import parse_td_quote
from tests.unit.verify._vectors import VECTORS

NEAR_DIRECT = (
    "teep_neardirect_attestation_report.json (13rac1/teep internal/integration/testdata/: "
    "NEAR AI model node qwen35-122b.completions.near.ai, recorded 2026-06-29)"
)
NEAR_CLOUD = (
    "teep_nearcloud_attestation_report.json {part} (13rac1/teep internal/integration/testdata/: "
    "NEAR AI Cloud cloud-api.near.ai, recorded 2026-06-29)"
)
VLLM_PROXY = (
    "vllmproxy_sample_dstack_get_quote.json + vllmproxy_sample_dstack_info.json "
    "(nearai/vllm-proxy tests/app/sample_dstack_data.py, converted to JSON)"
)
HEX = {"os_image_hash": 64, "mrtd": 96, "rtmr1": 96, "rtmr2": 96}


def _nodes() -> Iterator[tuple[str, NodeAttestation]]:
    direct = parse_report((VECTORS / "teep_neardirect_attestation_report.json").read_bytes())
    for node in direct.nodes:
        yield NEAR_DIRECT, node
    cloud = parse_report((VECTORS / "teep_nearcloud_attestation_report.json").read_bytes())
    for i, node in enumerate(cloud.nodes):
        yield NEAR_CLOUD.format(part=f"model_attestations[{i}]"), node
    assert cloud.gateway is not None
    yield NEAR_CLOUD.format(part="gateway_attestation"), cloud.gateway
    # the vllm-proxy sample is a bare dstack GetQuote answer plus dstack Info: wrap it as a report
    quote = json.loads((VECTORS / "vllmproxy_sample_dstack_get_quote.json").read_text())
    info = json.loads((VECTORS / "vllmproxy_sample_dstack_info.json").read_text())
    wrapped = {
        "signing_address": "00" * 20,
        "intel_quote": quote["quote"],
        "event_log": quote["event_log"],
        "info": info,
    }
    yield VLLM_PROXY, parse_report(json.dumps(wrapped).encode()).nodes[0]


def _image_name(node: NodeAttestation) -> str | None:
    vm = (node.info or {}).get("vm_config")
    if isinstance(vm, str):
        vm = json.loads(vm)
    name = vm.get("image") if isinstance(vm, dict) else None
    return name if isinstance(name, str) else None


def derive() -> list[dict[str, Any]]:
    """The registry entries, in vector order, from the vectors alone."""
    entries: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for source, node in _nodes():
        td = parse_td_quote(node.intel_quote)
        problem, identity = check_event_log(node.event_log, td.rtmrs)
        assert problem is None, (source, problem)
        assert identity.os_image_hash is not None and not identity.repeated, source
        assert td.td_attributes[0] & 1 == 0, f"{source} is a debug TD"
        key = (identity.os_image_hash, td.mrtd.hex(), td.rtmrs[1].hex(), td.rtmrs[2].hex())
        if key in entries:
            entries[key]["source"] += f"; {source}"
            assert entries[key]["name"] == _image_name(node), source
            continue
        entries[key] = {
            "os_image_hash": key[0],
            "name": _image_name(node),
            "mrtd": key[1],
            "rtmr1": key[2],
            "rtmr2": key[3],
            "source": source,
        }
    return list(entries.values())


def shipped() -> dict[str, Any]:
    path = importlib.resources.files("redpill_integrations") / "data" / "os_images_legacy.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_entry_re_derives_from_its_vector() -> None:
    assert shipped()["images"] == derive()


def test_the_registry_is_dated_and_well_formed() -> None:
    data = shipped()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["date"])
    for entry in data["images"]:
        assert set(entry) == {"os_image_hash", "name", "mrtd", "rtmr1", "rtmr2", "source"}
        for field, length in HEX.items():
            assert re.fullmatch(f"[0-9a-f]{{{length}}}", entry[field]), (field, entry)


def test_known_images() -> None:
    by_hash = {e["os_image_hash"]: e for e in shipped()["images"]}
    gpu = by_hash["9b69bb1698bacbb6985409a2c272bcb892e09cdcea63d5399c6768b67d3ff677"]
    assert gpu["name"] == "dstack-nvidia-0.5.5"
    assert "teep_neardirect" in gpu["source"] and "model_attestations[0]" in gpu["source"]
    gateway = by_hash["da9a3d5cc196a1a76d953fb27069be428ddf60a1ce10b0534c3cf968d3053fde"]
    assert gateway["name"] is None and "gateway_attestation" in gateway["source"]
    assert "6809f73ca56b2dfba9918bdb9709608f30284af4fbb50e707e3270a0436f1657" in by_hash
