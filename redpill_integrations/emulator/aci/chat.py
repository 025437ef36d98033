"""``POST /v1/chat/completions`` in ACI mode: receipts, the ``provider`` constraint, refusals.

The reply itself comes from the emulator's model (:mod:`redpill_integrations.emulator.model`);
this module wraps it the way the gateway does: it records ``request.received`` (sha256 of the raw
request bytes), ``request.forwarded`` (the body without the ``aci_*`` constraint),
``upstream.verified``, ``response.received`` and ``response.returned`` (sha256 of the exact
bytes emitted, the whole SSE stream), signs the receipt and stores it when the response completes
(streams: after the last event, before the end of the body).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from redpill_integrations.emulator.aci.receipts import (
    StoredReceipt,
    new_receipt_id,
    owner_of,
    sha256_tag,
    sign_receipt,
)
from redpill_integrations.emulator.aci.upstreams import SessionBook, Upstream, upstream_for
from redpill_integrations.emulator.faults import FAULTS_HEADER, Faults, parse_faults_header
from redpill_integrations.emulator.latency import generation_time, stream_event_interval
from redpill_integrations.emulator.model import (
    completion_tokens,
    new_chat_id,
    render_json,
    render_sse_events,
)
from redpill_integrations.emulator.responses import EventStreamResponse, ResetResponse
from redpill_integrations.emulator.state import EmulatorState
from redpill_integrations.emulator.tamper import tamper_json, tamper_sse

__all__ = ["ConstraintError", "aci_chat", "error_body", "parse_constraint"]

ENDPOINT = "/v1/chat/completions"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ConstraintError(ValueError):
    """A malformed ``provider`` / ``aci_*`` constraint (answered 400)."""


def error_body(message: str, type_: str) -> bytes:
    err = {"error": {"message": message, "type": type_, "code": None, "param": None}}
    return json.dumps(err, separators=(",", ":")).encode()


def _error(status: int, message: str, type_: str = "invalid_request_error") -> Response:
    return Response(error_body(message, type_), status_code=status, media_type="application/json")


def parse_constraint(body: dict[str, Any]) -> tuple[bool, list[str] | None, dict[str, Any]]:
    """(required, pinned session ids, the body to forward) from the ``provider`` member."""
    provider = body.get("provider")
    if provider is None:
        return False, None, body
    if not isinstance(provider, dict):
        raise ConstraintError("'provider' must be an object")
    unknown = [
        k for k in provider if k.startswith("aci_") and k not in ("aci_verified", "aci_session_ids")
    ]
    if unknown:
        raise ConstraintError(f"unknown ACI constraint {unknown[0]!r}")
    verified = provider.get("aci_verified")
    if verified is not None and not isinstance(verified, bool):
        raise ConstraintError("'provider.aci_verified' must be a boolean")
    ids = provider.get("aci_session_ids")
    if ids is not None:
        if verified is False:
            raise ConstraintError("'aci_session_ids' requires aci_verified")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) and _HEX64.match(i) for i in ids)
        ):
            raise ConstraintError("'aci_session_ids' must be a non-empty list of 64-hex ids")
    rest = {k: v for k, v in provider.items() if not k.startswith("aci_")}
    forwarded = {k: v for k, v in body.items() if k != "provider"}
    if rest:
        forwarded["provider"] = rest
    return bool(verified) or ids is not None, ids, forwarded


def _upstream_event(
    up: Upstream, served_name: str, *, required: bool, session_id: str | None, faults: Faults
) -> dict[str, Any]:
    if session_id is not None and not faults.upstream_failed:
        return {
            "type": "upstream.verified",
            "result": "verified",
            "required": required and not faults.upstream_not_required,
            "model_id": served_name,
            "session_id": session_id,
        }
    return {
        "type": "upstream.verified",
        "result": "failed",
        "required": required and not faults.upstream_not_required,
        "model_id": served_name,
        "reason": "upstream is not TEE-attested" if not up.is_tee else "upstream evidence failed",
        "upstream_name": up.name,
    }


async def aci_chat(request: Request, state: EmulatorState, sessions: SessionBook) -> Response:
    auth = request.headers.get("authorization")
    owner = owner_of(auth)
    if owner is None:
        return _error(401, "Missing or invalid API key", "authentication_error")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(400, "'model' is required")
    try:
        required, pinned, forwarded = parse_constraint(body)
    except ConstraintError as exc:
        return _error(400, str(exc))
    info = state.models.get(body["model"])
    if info is None:
        return _error(404, f"The model `{body['model']}` does not exist", "not_found_error")
    header_faults = parse_faults_header(request.headers.get(FAULTS_HEADER))
    faults = state.faults_for(info.id, header_faults)
    state.stats.chat_requests += 1
    gw = state.aci
    up = upstream_for(info.id, tee=info.tee)
    receipt_id = new_receipt_id()
    session_id = sessions.current(up, gw.now()) if up.is_tee else None
    events: list[dict[str, Any]] = [{"type": "request.received", "body_hash": sha256_tag(raw)}]
    headers = {"X-E2EE-Applied": "false"}
    if not faults.missing_receipt_id:
        headers["X-Receipt-Id"] = receipt_id

    def finalize(chat_id: str | None, emitted: bytes, log: list[dict[str, Any]]) -> None:
        doc = {
            "api_version": "aci/1",
            "receipt_id": receipt_id,
            "chat_id": chat_id,
            "model": body["model"],
            "workload_keyset_digest": gw.keyset_digest(expired=faults.keyset_expired),
            "endpoint": ENDPOINT,
            "method": "POST",
            "served_at": gw.now(),
            "event_log": [*log, {"type": "response.returned", "body_hash": sha256_tag(emitted)}],
        }
        signed = sign_receipt(doc, gw.keys, faults)
        now = state.receipts.now()
        delay = faults.receipt_delay or 0.0
        state.receipts.put(
            StoredReceipt(
                receipt_id=receipt_id,
                chat_id=chat_id,
                owner=owner,
                doc=signed,
                stored_at=now,
                ttl=state.config.receipt_ttl,
                ready_after=now + delay,
                faults=header_faults,
            )
        )
        state.stats.chats_completed += 1
        if faults.rotate_keyset:
            gw.rotate()

    refusal = None
    if required and not up.is_tee:
        refusal = (503, "upstream_verification_failed", "no attested route for this model")
    elif pinned is not None and session_id not in pinned:
        refusal = (412, "session_not_accepted", "the pinned sessions are not current")
    if refusal is not None:
        status, type_, message = refusal
        out = error_body(message, type_)
        failed = {
            "type": "upstream.verified",
            "result": "failed",
            "required": True,
            "model_id": info.served_name,
            "reason": message,
            "upstream_name": up.name,
        }
        finalize(None, out, [*events, failed])
        return Response(out, status_code=status, media_type="application/json", headers=headers)

    events.append({"type": "request.forwarded", "body_hash": sha256_tag(_compact(forwarded))})
    events.append(
        _upstream_event(
            up, info.served_name, required=required, session_id=session_id, faults=faults
        )
    )
    messages = body.get("messages")
    reply = state.script.next(info.id, messages, request=forwarded)
    chat_id = new_chat_id()

    def done(emitted: bytes) -> Callable[[], None]:
        log = [*events, {"type": "response.received", "body_hash": sha256_tag(emitted)}]
        return lambda: finalize(chat_id, emitted, log)

    if body.get("stream") is True:
        opts = body.get("stream_options")
        usage = isinstance(opts, dict) and opts.get("include_usage") is True
        sse = render_sse_events(chat_id, info.id, reply, messages, include_usage=usage)
        if faults.truncate_stream:
            sse = sse[:-1]
        emitted = b"".join(sse)
        return EventStreamResponse(
            tamper_sse(sse, faults.tamper_response),
            on_complete=done(emitted),
            complete_before_end=True,
            reset_after=max(1, len(sse) // 2) if faults.reset_mid_stream else None,
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            interval=stream_event_interval(
                stream_interval=state.config.stream_interval,
                time_per_token=state.config.time_per_token,
                tokens=completion_tokens(reply),
                events=len(sse),
            ),
            first_delay=state.config.time_to_first_token,
        )
    delay = generation_time(
        time_to_first_token=state.config.time_to_first_token,
        time_per_token=state.config.time_per_token,
        tokens=completion_tokens(reply),
    )
    if delay > 0:
        await asyncio.sleep(delay)
    out = render_json(chat_id, info.id, reply, messages)
    if faults.reset_mid_stream:
        return ResetResponse(tamper_json(out, faults.tamper_response))
    done(out)()
    return Response(
        tamper_json(out, faults.tamper_response), media_type="application/json", headers=headers
    )


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
