"""Hostile servers (tests/reliability/_hostile.py) in front of the emulator.

Every row ends with an exact verdict within its deadline, in bounded memory, and with nothing
lost (conftest.assert_exchange). Resource attacks (an endless body behind a 5 GiB Content-Length,
a gzip bomb, a slow drip) run on the real clock with short deadlines; the others on the fake one.
Deeply nested JSON, which can kill the interpreter outright, is in test_deep_json.py.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import openai
import pytest

from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import VerificationPolicy

from ._hostile import Action, Hostile, Req, answer, drip, endless, gzip_bomb, make_bomb, reset
from .conftest import assert_exchange, call

V, F, U = "verified", "failed", "unverifiable"
TARGETS: dict[str, Callable[[Req], bool]] = {
    "chat": lambda q: q.path == "/v1/chat/completions",
    "signature": lambda q: q.path.startswith("/v1/signature/"),
    "report": lambda q: q.path == "/v1/attestation/report",
    "nras": lambda q: q.path == "/v3/attest/gpu",
    "pccs": lambda q: q.path.startswith(("/sgx/", "/tdx/")),
}
RSS_BUDGET_KB = 300 * 1024  # peak RSS may grow by at most this much during one exchange


def on(
    target: str, make: Callable[[], Action], times: int | None = None
) -> Callable[[Req], Action | None]:
    left = [times]

    def route(req: Req) -> Action | None:
        if not TARGETS[target](req) or left[0] == 0:
            return None
        if left[0] is not None:
            left[0] -= 1
        return make()

    return route


@pytest.fixture
def hostile(emu: Emulator) -> Iterator[Hostile]:
    server = Hostile(emu).start()
    yield server
    server.stop()


def _rig(rig: Any, hostile: Hostile, emu: Emulator, kind: str, via: str = "", **kw: Any) -> Any:
    """A rig whose base URL is the hostile server; ``via`` also routes "nras" or "pccs" there."""
    trust = emu.trust
    if via == "nras":
        trust = dataclasses.replace(trust, nras_url=hostile.origin + "/v3/attest/gpu")
    if via == "pccs":
        trust = dataclasses.replace(trust, pccs_url=hostile.origin)
    return rig(kind, base_url=hostile.base_url, trust=trust, **kw)


# -- connection resets (fake clock) --------------------------------------------------------------

Route = Callable[[Req], Action | None]
# route factory (fresh counters per test), status, reasons, signature attempts
RESETS: dict[str, tuple[Callable[[], Route], str, tuple[str, ...], int | None]] = {
    "signature-rst-x2": (lambda: on("signature", reset, 2), V, (), 3),
    "signature-rst-after-partial-x2": (
        lambda: on("signature", lambda: reset(b'{"text": "'), 2),
        V,
        (),
        3,
    ),
    "signature-rst-forever": (lambda: on("signature", reset), U, ("UPSTREAM_HTTP_ERROR",), None),
    "report-rst": (
        lambda: on("report", lambda: reset(b'{"signing_address": "'), 1),
        U,
        ("UPSTREAM_HTTP_ERROR",),
        1,
    ),
    "nras-rst": (lambda: on("nras", reset), U, ("DEPENDENCY_UNAVAILABLE",), 1),
}


@pytest.mark.parametrize("kind", ["lc", "li"])
@pytest.mark.parametrize("row", list(RESETS))
def test_connection_resets(emu: Emulator, hostile: Hostile, rig: Any, row: str, kind: str) -> None:
    make_route, status, reasons, attempts = RESETS[row]
    hostile.route = make_route()
    r = _rig(
        rig,
        hostile,
        emu,
        kind,
        via="nras" if row.startswith("nras") else "",
        policy=VerificationPolicy(signature_deadline=10.0),
    )
    out = call(r, f"reset row {row}", stream=kind == "li")
    receipt = assert_exchange(r, out, status, reasons)
    if attempts is not None:
        assert receipt.signature_attempts == attempts
    else:
        assert receipt.signature_attempts > 3 and r.time.now <= 10.0


# -- bodies crafted and signed by the attested key (fake clock) -----------------------------------


def _chat_body(req: dict[str, Any], chat_id: str) -> dict[str, Any]:
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": 1,
        "model": req["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "the real answer"},
            }
        ],
    }


def _duplicate_key(req: dict[str, Any]) -> tuple[str, bytes, bytes]:
    """Sent: a body whose message has ``content`` twice; signed: ``json.dumps(json.loads(sent))``
    (the normalised form some proxies sign), which a last-key-wins parser agrees with."""
    chat_id = "chatcmpl-dupkey"
    signed = json.dumps(_chat_body(req, chat_id)).encode()
    sent = signed.replace(
        b'"content": "the real answer"',
        b'"content": "what a first-key-wins parser sees", "content": "the real answer"',
    )
    assert json.dumps(json.loads(sent)).encode() == signed
    return chat_id, sent, signed


PATH_ID = "chatcmpl-../../attestation/report?model=x&nonce=00#/..%2F..%2Fmodels"


def _path_chars(req: dict[str, Any]) -> tuple[str, bytes, bytes]:
    body = json.dumps(_chat_body(req, PATH_ID)).encode()
    return PATH_ID, body, body


def _dup_signature(req: Req, w: Any) -> Any:
    return answer(
        200, b'{"text": "x:y", "text": "a:b", "signature": "00", "signing_algo": "ecdsa"}'
    )(req, w)


CRAFTED: dict[
    str, tuple[str, Callable[[Hostile], Callable[[Req], Action | None]], str, tuple[str, ...]]
] = {
    "duplicate-json-key-in-chat": (
        "chat",
        lambda h: on("chat", lambda: h.mint_chat(_duplicate_key)),
        F,
        ("DUPLICATE_JSON_KEY",),
    ),
    "chat-id-with-path-characters": (
        "chat",
        lambda h: on("chat", lambda: h.mint_chat(_path_chars)),
        V,
        (),
    ),
    "duplicate-json-key-in-signature": (
        "signature",
        lambda h: on("signature", lambda: _dup_signature),
        F,
        ("DUPLICATE_JSON_KEY",),
    ),
    "duplicate-json-key-in-report": (
        "report",
        lambda h: on(
            "report", lambda: answer(200, b'{"signing_address": "0x00", "signing_address": "0x01"}')
        ),
        F,
        ("DUPLICATE_JSON_KEY",),
    ),
}


@pytest.mark.parametrize("kind", ["lc", "li"])
@pytest.mark.parametrize("row", list(CRAFTED))
def test_crafted_bodies(emu: Emulator, hostile: Hostile, rig: Any, row: str, kind: str) -> None:
    _, make_route, status, reasons = CRAFTED[row]
    hostile.route = make_route(hostile)
    r = _rig(rig, hostile, emu, kind, policy=VerificationPolicy(signature_deadline=5.0))
    out = call(r, f"crafted row {row}")
    assert_exchange(r, out, status, reasons)
    if row == "chat-id-with-path-characters":
        assert out.verdict["chat_id"] == PATH_ID
        lookups = [q.target for q in hostile.log if TARGETS["signature"](q)]
        assert lookups == [
            f"/v1/signature/{quote(PATH_ID, safe='')}?model=phala%2Fgpt-oss-120b&signing_algo=ecdsa"
        ]
        assert {q.path for q in hostile.log} == {
            "/v1/models",  # strict mode's gateway probe (ACI or legacy?) ...
            "/",  # ... asked at the origin too when the listing does not say ACI
            "/v1/chat/completions",
            "/v1/signature/" + quote(PATH_ID, safe=""),
            "/v1/attestation/report",
        }


# -- resource exhaustion (real clock, short deadlines) --------------------------------------------

SIG_DEADLINE, ATT_DEADLINE = 2.0, 3.0
# row: (target, action factory (given the bomb), reasons, adapters)
RESOURCES: dict[str, tuple[str, Callable[[bytes], Action], tuple[str, ...], tuple[str, ...]]] = {
    "signature-5GiB-content-length": (
        "signature",
        lambda b: endless(),
        ("RESPONSE_TOO_LARGE",),
        ("lc", "li"),
    ),
    "signature-gzip-bomb": ("signature", gzip_bomb, ("RESPONSE_TOO_LARGE",), ("lc", "li")),
    "signature-slow-drip": ("signature", lambda b: drip(6.0), ("TIMEOUT",), ("lc",)),
    "report-5GiB-content-length": (
        "report",
        lambda b: endless(),
        ("RESPONSE_TOO_LARGE",),
        ("lc", "li"),
    ),
    "report-gzip-bomb": ("report", gzip_bomb, ("RESPONSE_TOO_LARGE",), ("lc", "li")),
    "report-slow-drip": ("report", lambda b: drip(6.0), ("TIMEOUT",), ("li",)),
    "nras-5GiB-content-length": (
        "nras",
        lambda b: endless(),
        ("DEPENDENCY_UNAVAILABLE",),
        ("lc", "li"),
    ),
    "nras-gzip-bomb": ("nras", gzip_bomb, ("DEPENDENCY_UNAVAILABLE",), ("lc", "li")),
    "nras-slow-drip": ("nras", lambda b: drip(6.0), ("DEPENDENCY_UNAVAILABLE",), ("lc",)),
    "pccs-5GiB-content-length": (
        "pccs",
        lambda b: endless(),
        ("DEPENDENCY_UNAVAILABLE",),
        ("lc", "li"),
    ),
    "pccs-gzip-bomb": ("pccs", gzip_bomb, ("DEPENDENCY_UNAVAILABLE",), ("lc", "li")),
    "pccs-slow-drip": ("pccs", lambda b: drip(6.0), ("DEPENDENCY_UNAVAILABLE",), ("li",)),
}
RESOURCE_CASES = [
    pytest.param(row, kind, id=f"{row}-{kind}")
    for row, (_, _, _, kinds) in RESOURCES.items()
    for kind in kinds
]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return make_bomb()


@pytest.mark.parametrize(("row", "kind"), RESOURCE_CASES)
def test_resource_exhaustion(
    emu: Emulator, hostile: Hostile, rig: Any, bomb: bytes, row: str, kind: str
) -> None:
    target, make, reasons, _ = RESOURCES[row]
    hostile.route = on(target, lambda: make(bomb))
    r = _rig(
        rig,
        hostile,
        emu,
        kind,
        via=target,
        real_time=True,
        policy=VerificationPolicy(
            signature_deadline=SIG_DEADLINE, attestation_deadline=ATT_DEADLINE
        ),
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    out = call(r, f"resource row {row}", stream=kind == "li")
    elapsed = time.monotonic() - start
    deadline = SIG_DEADLINE if target == "signature" else ATT_DEADLINE
    assert elapsed < deadline + 1.5, f"{elapsed:.1f}s for a {deadline}s deadline"
    assert_exchange(r, out, U, reasons)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < RSS_BUDGET_KB


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_chat_announcing_5GiB(emu: Emulator, hostile: Hostile, rig: Any, kind: str) -> None:
    """The chat answer announces 5 GiB and closes after the real body. JSON: the SDK's documented
    connection error, nothing delivered, no receipt. SSE: every event was delivered (and kept),
    but the body is short of its framing: unverifiable STREAM_INCOMPLETE, one receipt."""
    hostile.route = lambda req: hostile.lying_length() if TARGETS["chat"](req) else None
    r = _rig(rig, hostile, emu, kind, mode="annotate")
    with pytest.raises(openai.APIConnectionError):
        call(r, "announce a lot")
    assert len(r.store) == 0
    s = _rig(rig, hostile, emu, kind, mode="annotate")
    out = call(s, "announce a lot, streamed", stream=True)
    receipt = assert_exchange(s, out, U, ("STREAM_INCOMPLETE",), mode="annotate")
    assert receipt.signature_attempts == 0 and out.content.endswith("announce a lot, streamed")
