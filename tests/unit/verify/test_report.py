"""parse_report: the flat and two-layer shapes, unsupported shapes, and malformed input."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from redpill_integrations.errors import DuplicateJSONKey, MalformedEvidence, UnsupportedProtocol
from redpill_integrations.results import Reason
from redpill_integrations.verify import parse_report
from tests.unit.verify._vectors import (
    CLOUD_NONCE,
    NEAR_KEY,
    NEAR_NONCE,
    cached,
    dump,
    near_report_dict,
)


def test_near_direct_flat_report() -> None:
    report = parse_report(cached("teep_neardirect_attestation_report.json"))
    assert report.shape == "flat" and report.gateway is None
    assert len(report.nodes) == 1  # all_attestations repeats the top-level node
    node = report.nodes[0]
    assert node.signing_address == NEAR_KEY and node.signing_algo == "ed25519"
    assert node.request_nonce == NEAR_NONCE
    assert node.intel_quote[:2] == b"\x04\x00" and len(node.event_log) == 30
    assert node.tls_cert_fingerprint == (
        "eb336f52d78ea04869573f291d53e5a9d1bdbfa1a75b73330eebfb4aa353a2ad"
    )
    assert node.model_name == "Qwen/Qwen3.5-122B-A10B"
    assert json.loads(node.nvidia_payload or "")["nonce"] == NEAR_NONCE
    assert node.info is not None and isinstance(node.info["tcb_info"], dict)


def test_near_cloud_two_layer_report() -> None:
    report = parse_report(cached("teep_nearcloud_attestation_report.json"))
    assert report.shape == "two-layer"
    assert report.gateway is not None
    assert report.gateway.request_nonce == CLOUD_NONCE
    assert len(report.gateway.event_log) > 0  # given as a JSON *string* in this report
    assert [n.signing_address for n in report.nodes] == [NEAR_KEY]


def test_node_for_is_case_insensitive_and_accepts_0x() -> None:
    report = parse_report(cached("teep_neardirect_attestation_report.json"))
    assert report.node_for("0x" + NEAR_KEY.upper()) is report.nodes[0]
    assert report.node_for("ab" * 32) is None
    assert report.node_for("") is None


def test_all_attestations_are_expanded_into_nodes() -> None:
    data = near_report_dict()
    other = copy.deepcopy(data["all_attestations"][0])
    other["signing_address"] = "11" * 32
    data["all_attestations"].append(other)
    report = parse_report(dump(data))
    assert [n.signing_address for n in report.nodes] == [NEAR_KEY, "11" * 32]
    assert report.node_for("11" * 32) is report.nodes[1]


def test_base64_quote_and_string_tcb_info_are_normalised() -> None:
    data = near_report_dict()
    raw = bytes.fromhex(data["intel_quote"])
    data["intel_quote"] = base64.b64encode(raw).decode()
    data["info"]["tcb_info"] = json.dumps(data["info"]["tcb_info"])
    data["event_log"] = json.dumps(data["event_log"])
    del data["all_attestations"]
    node = parse_report(dump(data)).nodes[0]
    assert node.intel_quote == raw
    assert node.info is not None and node.info["tcb_info"]["compose_hash"].startswith("6600")
    assert len(node.event_log) == 30


def test_event_log_falls_back_to_tcb_info() -> None:
    data = near_report_dict()
    del data["event_log"], data["all_attestations"]
    assert len(parse_report(dump(data)).nodes[0].event_log) == 30


def test_chutes_report_is_unsupported_protocol() -> None:
    with pytest.raises(UnsupportedProtocol) as info:
        parse_report(cached("teep_redpill_attestation_report_chutes_format.json"))
    assert info.value.reason is Reason.UNSUPPORTED_PROTOCOL
    assert "chutes" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"attestation_type": "tinfoil"},
        {"attestation_type": 5},
        {"quote": "00"},
        {},
        {"signing_address": "ab" * 20},
    ],
)
def test_other_shapes_are_unsupported(data: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedProtocol):
        parse_report(dump(data))


def test_duplicate_keys_are_rejected_anywhere() -> None:
    body = cached("teep_neardirect_attestation_report.json")
    top = b'{"signing_address": "00", ' + body[1:]
    with pytest.raises(DuplicateJSONKey) as info:
        parse_report(top)
    assert info.value.reason is Reason.DUPLICATE_JSON_KEY
    nested = body.replace(b'"event":"",', b'"event":"","event":"x",', 1)  # inside event_log
    assert nested != body
    with pytest.raises(DuplicateJSONKey):
        parse_report(nested)


def _mutate(path: tuple[Any, ...], value: Any) -> bytes:
    data = near_report_dict()
    del data["all_attestations"]
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return dump(data)


_DELETE = object()

MALFORMED = [
    (("signing_address",), "ab" * 19),  # wrong length
    (("signing_address",), "zz" * 32),
    (("signing_address",), 42),
    (("signing_address",), "ab" * 20),  # ecdsa length with signing_algo ed25519
    (("signing_algo",), "rsa"),
    (("request_nonce",), "00" * 31),
    (("request_nonce",), ["00"]),
    (("intel_quote",), "0400" * 10),  # too short for a quote
    (("intel_quote",), "not hex or base64!"),
    (("intel_quote",), "ab" * 70_000),  # huge
    (("intel_quote",), None),
    (("nvidia_payload",), 7),
    (("event_log",), {"imr": 0}),
    (("event_log",), "[not json"),
    (("event_log", 0, "imr"), 4),
    (("event_log", 0, "imr"), "0"),
    (("event_log", 0, "imr"), True),
    (("event_log", 0, "digest"), "ab" * 32),
    (("event_log", 0, "event_payload"), "abc"),
    (("event_log", 0, "event"), 1),
    (("event_log", 0), "event"),
    (("info",), "info"),
    (("info", "tcb_info"), "{bad json"),
    (("info", "tcb_info"), ["list"]),
    (("info", "tcb_info", "app_compose"), {"a": 1}),
    (("info", "app_id"), 12),
    (("tls_cert_fingerprint",), "ab"),
    (("model_name",), ["x"]),
]


@pytest.mark.parametrize(("path", "value"), MALFORMED)
def test_malformed_fields_are_malformed_evidence(path: tuple[Any, ...], value: Any) -> None:
    with pytest.raises(MalformedEvidence) as info:
        parse_report(_mutate(path, value))
    assert info.value.reason is Reason.MALFORMED_RESPONSE


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b"42",
        b'"string"',
        b"[" * 100_000,
        b"\xff\xfe",
        b'{"gateway_attestation": {}, "model_attestations": []}',
        b'{"gateway_attestation": 1, "model_attestations": [{}]}',
        b'{"intel_quote": "00", "signing_address": "ab", "all_attestations": {}}',
        b"1" * 5000,
    ],
)
def test_malformed_bodies_are_typed_errors(body: bytes) -> None:
    with pytest.raises((MalformedEvidence, UnsupportedProtocol)):
        parse_report(body)


def test_two_layer_with_bad_model_list_is_malformed() -> None:
    data = json.loads(cached("teep_nearcloud_attestation_report.json"))
    data["model_attestations"] = [1]
    with pytest.raises(MalformedEvidence):
        parse_report(dump(data))


def test_oversized_report_is_rejected_before_parsing() -> None:
    with pytest.raises(MalformedEvidence, match="larger"):
        parse_report(b" " * (16 * 1024 * 1024 + 1))
