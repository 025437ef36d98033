"""The ACI-mode routes (``Emulator(protocol="aci")``), registered ahead of the legacy ones.

Every response carries ``X-ACI-Version: aci/1`` and ``X-ACI-Keyset-Digest: sha256:<hex>``.

- ``GET /`` → ``{"api_version":"aci/1","workload_keyset_digest":…}`` (the probe).
- ``GET /v1/models`` → the models with ``is_tee`` and their upstream kind (see
  :mod:`redpill_integrations.emulator.aci.upstreams` for the table).
- ``GET /v1/aci/attestation?nonce=<64 lowercase hex>`` (400 otherwise; absent: ``null``).
- ``POST /v1/chat/completions`` (:mod:`redpill_integrations.emulator.aci.chat`).
- ``GET /v1/aci/receipts/{receipt_id or chat_id}``: canonical bytes; 401 without a token for an
  owned receipt, 404 for a wrong token, unknown or expired ids.
- ``GET /v1/aci/sessions/{id}`` (sealed canonical bytes) and ``GET /v1/aci/sessions`` (listing).
- Legacy aliases: ``GET /v1/signature/{chat_id or receipt_id}`` (EIP-191 by the keyset's
  secp256k1 E2EE key over ``"<sha256 req>:<sha256 resp>"``, receipt embedded) and
  ``GET /v1/attestation/report`` (the gateway's report over ``address‖nonce``; the Chutes pool
  shape for Chutes-routed models).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redpill_integrations.emulator.aci.chat import aci_chat, error_body
from redpill_integrations.emulator.aci.jcs import canonical
from redpill_integrations.emulator.aci.receipts import owner_of
from redpill_integrations.emulator.aci.report import build_aci_report, build_alias_report
from redpill_integrations.emulator.aci.upstreams import (
    EvidenceSource,
    SessionBook,
    UpstreamKind,
    upstream_for,
)
from redpill_integrations.emulator.faults import (
    FAULTS_HEADER,
    Faults,
    FaultsHeaderError,
    JsonFault,
    parse_faults_header,
)
from redpill_integrations.emulator.nras import make_nvidia_payload
from redpill_integrations.emulator.report import build_report, dumps
from redpill_integrations.emulator.responses import ResetResponse
from redpill_integrations.emulator.state import EmulatorState

__all__ = ["install_aci_routes"]

_NONCE = re.compile(r"^[0-9a-f]{64}$")
_ANY_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
RECEIPT_NOT_FOUND = "receipt id (receipt_id or chat_id) not found or expired"
ALIAS_NOT_FOUND = "receipt id (chat_id or receipt_id) not found or expired"
#: nesting of the ``deep`` JSON fault (deeper than any sane verifier accepts)
DEEP_LEVELS = 100


def _error(status: int, message: str, type_: str) -> Response:
    return Response(error_body(message, type_), status_code=status, media_type="application/json")


def with_json_fault(body: bytes, fault: JsonFault | None) -> bytes:
    """``body`` (a JSON object) with a duplicate ``api_version`` or an over-deep member first."""
    if fault == "duplicate_key":
        return b'{"api_version":"aci/0",' + body[1:]
    if fault == "deep":
        return b'{"x_emulator_deep":' + b"[" * DEEP_LEVELS + b"]" * DEEP_LEVELS + b"," + body[1:]
    return body


class _AciHeaders:
    """Pure-ASGI middleware: ``X-ACI-Version`` and ``X-ACI-Keyset-Digest`` on every response."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for k, v in scope.get("headers", []):
            if k == FAULTS_HEADER.lower().encode():
                try:
                    header = parse_faults_header(v.decode("latin-1"))
                except FaultsHeaderError:
                    header = None
        expired = self.state.faults_for(None, header).keyset_expired
        digest = self.state.aci.keyset_digest(expired=expired)  # before the response: rotation

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-aci-version", b"aci/1"),
                    (b"x-aci-keyset-digest", digest.encode()),
                ]
            await send(message)

        await self.app(scope, receive, wrapped)


def _evidence_source(state: EmulatorState) -> EvidenceSource:
    def evidence(kind: UpstreamKind, nonce: str) -> bytes | None:
        if kind == "phala-direct":
            report = build_report(
                state, model="phala/gpt-oss-120b", nonce_hex=nonce, algo="ecdsa", faults=Faults()
            )
            return dumps(report)
        if kind == "near-ai":
            two = build_report(
                state,
                model="phala/deepseek-r1-70b",
                nonce_hex=nonce,
                algo="ecdsa",
                faults=Faults(),
                shape="two-layer",
            )
            bundle = {
                "provider": "nearai",
                "trust_boundary": "near-ai-gateway",
                "request_nonce": nonce,
                "tls_cert_fingerprint": state.tls_fingerprint.hex(),
                "gateway_attestation": two["gateway_attestation"],
                "model_attestations": two["model_attestations"],
            }
            return json.dumps(bundle, separators=(",", ":")).encode()
        return None

    return evidence


def install_aci_routes(app: FastAPI, state: EmulatorState) -> SessionBook:
    """Register the ACI routes on ``app`` (before the legacy ones, so these win)."""
    gw = state.aci
    sessions = SessionBook(
        evidence=_evidence_source(state),
        spki_sha256=state.tls_fingerprint,
        signing_address=state.keys.address("ecdsa"),
    )
    app.add_middleware(_AciHeaders, state=state)

    def faults(request: Request, model: str | None = None, stored: Faults | None = None) -> Faults:
        header = parse_faults_header(request.headers.get(FAULTS_HEADER))
        return state.faults_for(model, stored).merged(header)

    @app.get("/")
    async def root(request: Request) -> Response:
        digest = gw.keyset_digest(expired=faults(request).keyset_expired)
        return JSONResponse({"api_version": "aci/1", "workload_keyset_digest": digest})

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if owner_of(request.headers.get("authorization")) is None:
            return _error(401, "Missing or invalid API key", "authentication_error")
        data = []
        for m in state.models.values():
            up = upstream_for(m.id, tee=m.tee)
            data.append(
                {
                    "id": m.id,
                    "object": "model",
                    "created": 1735689600,
                    "owned_by": "redpill",
                    "is_tee": up.is_tee,
                    "upstream": up.kind,
                }
            )
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await aci_chat(request, state, sessions)

    @app.get("/v1/aci/attestation")
    async def attestation(request: Request) -> Response:
        nonce = request.query_params.get("nonce")
        if nonce is not None and not _NONCE.match(nonce):
            return _error(400, "nonce must be 64 lowercase hex characters", "invalid_request_error")
        f = faults(request)
        state.stats.attestation_fetches += 1
        if nonce is not None:
            state.stats.attestation_nonces.append(nonce)
            del state.stats.attestation_nonces[:-10_000]
        report = build_aci_report(
            gw, state.quotes, nonce=nonce, faults=f, debug=state.config.debug_td
        )
        body = with_json_fault(json.dumps(report, separators=(",", ":")).encode(), f.json_fault)
        if state.take_attestation_reset(
            None, parse_faults_header(request.headers.get(FAULTS_HEADER))
        ):
            return ResetResponse(body)
        return Response(body, media_type="application/json")

    @app.get("/v1/aci/receipts/{key}")
    async def receipt(request: Request, key: str) -> Response:
        rec = state.receipts.get(key)
        f = faults(request, rec.doc["model"] if rec else None, rec.faults if rec else None)
        state.stats.receipt_lookups[key] += 1
        if f.receipt_unauthorized:
            return _error(401, "missing bearer token", "unauthorized")
        if state.stats.receipt_lookups[key] <= f.receipt_not_ready:
            return _error(404, RECEIPT_NOT_FOUND, "not_found")
        if rec is None or state.receipts.now() < rec.ready_after:
            return _error(404, RECEIPT_NOT_FOUND, "not_found")
        if rec.owner is not None:
            token = owner_of(request.headers.get("authorization"))
            if token is None:
                return _error(401, "missing bearer token", "unauthorized")
            if token != rec.owner:
                return _error(404, RECEIPT_NOT_FOUND, "not_found")
        return Response(with_json_fault(rec.body, f.json_fault), media_type="application/json")

    @app.get("/v1/aci/sessions/{session_id}")
    async def session(request: Request, session_id: str) -> Response:
        state.stats.session_lookups += 1
        doc = sessions.get(session_id)
        if doc is None:
            return _error(404, "attested session not found or expired", "not_found")
        f = faults(request)
        if f.session_id_mismatch:
            doc = {**doc, "expires_at": int(doc["expires_at"]) + 1}
        return Response(
            with_json_fault(canonical(doc), f.json_fault), media_type="application/json"
        )

    @app.get("/v1/aci/sessions")
    async def session_list(
        request: Request, upstream_name: str | None = None, model: str | None = None
    ) -> Response:
        del request
        return JSONResponse(sessions.listing(gw.now(), upstream_name, model))

    @app.get("/v1/signature/{key:path}")
    async def signature(request: Request, key: str, signing_algo: str | None = None) -> Response:
        algo = signing_algo or "ecdsa"
        if algo not in ("ecdsa", "ed25519"):
            return _error(400, f"unsupported signing_algo {signing_algo!r}", "invalid_signing_algo")
        rec = state.receipts.get(key, chat_first=True)
        f = faults(request, rec.doc["model"] if rec else None, rec.faults if rec else None)
        state.stats.signature_lookups[key] += 1
        counted = f.signature_fault(state.stats.signature_lookups[key] - 1)
        if counted in ("not_ready", "wrong_node"):
            return _error(404, ALIAS_NOT_FOUND, "not_found")
        if counted == "rate_limited":
            retry = {"Retry-After": f"{f.retry_after:g}"} if f.retry_after is not None else {}
            response = _error(429, "Rate limit exceeded", "rate_limit_error")
            response.headers.update(retry)
            return response
        if counted == "error_code_envelope":
            return JSONResponse({"error_code": 404, "message": ALIAS_NOT_FOUND})
        if counted is not None:
            return _error(f.server_error_status, "upstream error", "server_error")
        if rec is None or state.receipts.now() < rec.ready_after:
            return _error(404, ALIAS_NOT_FOUND, "not_found")
        if rec.owner is not None:
            token = owner_of(request.headers.get("authorization"))
            if token is None:
                return _error(401, "missing bearer token", "unauthorized")
            if token != rec.owner:
                return _error(404, ALIAS_NOT_FOUND, "not_found")
        hashes = {e["type"]: e.get("body_hash", "") for e in rec.doc["event_log"]}
        text = ":".join(
            hashes[t].removeprefix("sha256:") for t in ("request.received", "response.returned")
        )
        if algo == "ecdsa":
            sig, address = gw.keys.sign_eip191(text), gw.keys.e2ee_address
        else:
            sig, address = (
                state.gateway_keys.sign("ed25519", text),
                state.gateway_keys.address("ed25519"),
            )
        return JSONResponse(
            {
                "api_version": "aci/1",
                "text": text,
                "signature": sig,
                "signing_address": address,
                "signing_algo": algo,
                "receipt": rec.doc,
            }
        )

    @app.get("/v1/attestation/report")
    async def alias_report(
        request: Request, model: str | None = None, nonce: str | None = None
    ) -> Response:
        if not nonce:
            nonce_hex = os.urandom(32).hex()
        elif _ANY_HEX64.match(nonce):
            nonce_hex = nonce.lower()
        else:
            nonce_hex = hashlib.sha256(nonce.encode()).hexdigest()
        info = state.models.get(model or "")
        up = upstream_for(info.id, tee=info.tee) if info else None
        if up is not None and up.kind == "chutes":
            return JSONResponse(_chutes_pool(nonce_hex))
        if up is not None and up.kind == "phala-direct":
            nvidia = make_nvidia_payload(nonce_hex, state.config.gpu_count, state.seed)
        else:
            nvidia = json.dumps({"nonce": nonce_hex, "evidence_list": [], "arch": "HOPPER"})
        report = build_alias_report(
            gw,
            state.quotes,
            nonce_hex=nonce_hex,
            faults=faults(request),
            debug=state.config.debug_td,
            nvidia_payload=nvidia,
        )
        return JSONResponse(report)

    return sessions


def _chutes_pool(nonce_hex: str) -> dict[str, Any]:
    """The Chutes multi-instance shape (emulated; its quotes are placeholders)."""
    return {
        "attestation_type": "chutes",
        "nonce": nonce_hex,
        "all_attestations": [
            {
                "instance_id": "emulator-chutes-instance-0",
                "nonce": nonce_hex,
                "quote": base64.b64encode(b"emulated chutes quote").decode(),
                "gpu_evidence": [],
            }
        ],
    }
