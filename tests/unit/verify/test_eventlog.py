"""Event-log replay, dstack runtime digests and the compose/app identity, on real reports."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from redpill_integrations.verify import NodeAttestation, parse_report
from redpill_integrations.verify.eventlog import (
    check_compose,
    check_event_log,
    replay_rtmrs,
    runtime_event_digest,
)
from redpill_integrations.verify.report import _parse_event_log, _parse_info
from redpill_integrations.verify.tdx import parse_td_quote
from tests.unit.verify._vectors import cached, vector_json


def near_node() -> NodeAttestation:
    return parse_report(cached("teep_neardirect_attestation_report.json")).nodes[0]


def cloud_nodes() -> list[NodeAttestation]:
    report = parse_report(cached("teep_nearcloud_attestation_report.json"))
    assert report.gateway is not None
    return [report.gateway, *report.nodes]


def vllm_sample() -> tuple[tuple[dict[str, Any], ...], dict[str, Any], bytes]:
    quote = vector_json("vllmproxy_sample_dstack_get_quote.json")
    info = _parse_info(vector_json("vllmproxy_sample_dstack_info.json"), what="info")
    assert info is not None
    return _parse_event_log(quote["event_log"], what="log"), info, bytes.fromhex(quote["quote"])


def all_nodes() -> list[tuple[tuple[dict[str, Any], ...], dict[str, Any] | None, bytes]]:
    nodes = [near_node(), *cloud_nodes()]
    return [(n.event_log, n.info, n.intel_quote) for n in nodes] + [vllm_sample()]


@pytest.mark.parametrize("index", range(4))
def test_real_event_logs_replay_to_the_quote_and_compose_matches(index: int) -> None:
    events, info, quote = all_nodes()[index]
    td = parse_td_quote(quote)
    assert replay_rtmrs(events) == td.rtmrs
    problem, identity = check_event_log(events, td.rtmrs)
    assert problem is None
    assert identity.compose_hash == (info or {})["compose_hash"]
    assert identity.app_id == (info or {})["app_id"]
    assert check_compose(identity, info, td.mr_config_id) is None


def test_runtime_event_digests_recompute() -> None:
    runtime = [e for e in near_node().event_log if e["imr"] == 3]
    assert len(runtime) == 10
    for event in runtime:
        digest = runtime_event_digest(event["event"], bytes.fromhex(event["event_payload"]))
        assert digest.hex() == event["digest"]


def test_near_measured_identity_and_mr_config_id_v1() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    _, identity = check_event_log(node.event_log, td.rtmrs)
    compose = (node.info or {})["tcb_info"]["app_compose"]
    assert identity.compose_hash == hashlib.sha256(compose.encode()).hexdigest()
    assert identity.os_image_hash == (node.info or {})["os_image_hash"]
    compose_hash = bytes.fromhex(identity.compose_hash or "")
    assert td.mr_config_id == (b"\x01" + compose_hash).ljust(48, b"\0")


def _with_event(events: tuple[dict[str, Any], ...], index: int, **changes: Any) -> list[Any]:
    out = [dict(e) for e in events]
    out[index].update(changes)
    return out


def test_flipped_boot_digest_breaks_the_replay() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    digest = node.event_log[0]["digest"]
    events = _with_event(node.event_log, 0, digest=("0" if digest[0] != "0" else "1") + digest[1:])
    problem, _ = check_event_log(events, td.rtmrs)
    assert problem == "RTMR0 replay does not equal the quote"


def test_changed_runtime_payload_no_longer_recomputes() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    index = next(i for i, e in enumerate(node.event_log) if e["event"] == "compose-hash")
    events = _with_event(node.event_log, index, event_payload="00" * 32)
    problem, _ = check_event_log(events, td.rtmrs)
    assert problem is not None and "compose-hash" in problem


def test_recomputed_but_unmeasured_runtime_event_breaks_rtmr3() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    index = next(i for i, e in enumerate(node.event_log) if e["event"] == "compose-hash")
    fake = "11" * 32
    events = _with_event(
        node.event_log,
        index,
        event_payload=fake,
        digest=runtime_event_digest("compose-hash", bytes.fromhex(fake)).hex(),
    )
    problem, _ = check_event_log(events, td.rtmrs)
    assert problem == "RTMR3 replay does not equal the quote"


def test_dropped_event_and_empty_log_fail() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    assert check_event_log(node.event_log[:-1], td.rtmrs)[0] is not None
    assert check_event_log((), td.rtmrs)[0] == "the report carries no event log"


def _compose_problem(
    info_changes: dict[str, Any] | None = None,
    tcb_changes: dict[str, Any] | None = None,
    mr_config_id: bytes | None = None,
) -> str | None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    _, identity = check_event_log(node.event_log, td.rtmrs)
    info = json.loads(json.dumps(node.info))
    info.update(info_changes or {})
    info["tcb_info"].update(tcb_changes or {})
    return check_compose(identity, info, td.mr_config_id if mr_config_id is None else mr_config_id)


def test_wrong_compose_is_detected() -> None:
    compose = near_node().info["tcb_info"]["app_compose"]  # type: ignore[index]
    assert _compose_problem(tcb_changes={"app_compose": compose + " "}) == (
        "sha256(app_compose) differs from the compose-hash event"
    )
    assert _compose_problem({"compose_hash": "00" * 32}) == (
        "info.compose_hash differs from the compose-hash event"
    )
    assert _compose_problem({"app_id": "00" * 20}) == "info.app_id differs from the app-id event"
    assert _compose_problem(tcb_changes={"app_compose": None}) == (
        "info.tcb_info.app_compose is missing"
    )
    assert _compose_problem(mr_config_id=b"\x01" + bytes(47)) == (
        "mr_config_id is not 0x01 ‖ compose_hash"
    )


def test_absent_info_claims_are_not_contradictions_but_wrong_types_are() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    _, identity = check_event_log(node.event_log, td.rtmrs)
    info = json.loads(json.dumps(node.info))
    del info["compose_hash"], info["app_id"]
    assert check_compose(identity, info, td.mr_config_id) is None
    assert _compose_problem({"app_id": 5}) == "info.app_id differs from the app-id event"


def test_zero_mr_config_id_is_accepted_and_info_case_is_ignored() -> None:
    assert _compose_problem(mr_config_id=bytes(48)) is None
    node = near_node()
    upper = (node.info or {})["compose_hash"].upper()
    assert _compose_problem({"compose_hash": "0x" + upper}) is None


def test_missing_runtime_events_fail_compose() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    without = tuple(e for e in node.event_log if e["event"] not in ("compose-hash",))
    _, identity = check_event_log(without, td.rtmrs)
    assert check_compose(identity, node.info, td.mr_config_id) == "no compose-hash runtime event"
    without = tuple(e for e in node.event_log if e["event"] != "app-id")
    _, identity = check_event_log(without, td.rtmrs)
    assert check_compose(identity, node.info, td.mr_config_id) == "no app-id runtime event"
    _, identity = check_event_log(node.event_log, td.rtmrs)
    assert check_compose(dataclasses.replace(identity), None, td.mr_config_id) == (
        "info.tcb_info.app_compose is missing"
    )


def test_a_second_compose_hash_event_is_refused_even_when_it_replays() -> None:
    node = near_node()
    td = parse_td_quote(node.intel_quote)
    _, genuine = check_event_log(node.event_log, td.rtmrs)
    payload = bytes.fromhex(genuine.compose_hash or "")
    extra = {
        "imr": 3,
        "event_type": 0x08000001,
        "event": "compose-hash",
        "event_payload": payload.hex(),
        "digest": runtime_event_digest("compose-hash", payload).hex(),
    }
    events = (*node.event_log, extra)
    rtmrs = (*td.rtmrs[:3], replay_rtmrs(events)[3])  # as if the app had extended RTMR3 itself
    problem, identity = check_event_log(events, rtmrs)
    assert problem is None and identity.repeated == ("compose-hash",)
    assert check_compose(identity, node.info, td.mr_config_id) == (
        "runtime event 'compose-hash' is measured more than once"
    )
