"""The FastAPI application: Redpill's API, a PCCS and an NRAS on one loopback origin."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redpill_integrations.emulator.aci.routes import install_aci_routes
from redpill_integrations.emulator.faults import (
    FAULTS_HEADER,
    Faults,
    FaultsHeaderError,
    parse_faults_header,
)
from redpill_integrations.emulator.latency import (
    NetworkDelay,
    generation_time,
    stream_event_interval,
)
from redpill_integrations.emulator.model import (
    completion_tokens,
    new_chat_id,
    render_json,
    render_sse_events,
)
from redpill_integrations.emulator.nras import NrasService, PayloadError
from redpill_integrations.emulator.report import build_report, dumps
from redpill_integrations.emulator.responses import (
    EMULATOR_HEADER,
    EventStreamResponse,
    ResetResponse,
)
from redpill_integrations.emulator.signer import ChatRecord
from redpill_integrations.emulator.state import EmulatorState
from redpill_integrations.emulator.tamper import tamper_json, tamper_sse

__all__ = ["create_app"]

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
NOT_FOUND_MESSAGE = "Chat id not found or expired"


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


class _EmulatorHeader:
    """Pure-ASGI middleware: every response says it comes from an emulator."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), EMULATOR_HEADER]
            await send(message)

        await self.app(scope, receive, wrapped)


def _header_faults(request: Request) -> Faults | None:
    return parse_faults_header(request.headers.get(FAULTS_HEADER))


def create_app(state: EmulatorState) -> FastAPI:
    app = FastAPI(
        title="Redpill emulator (NOT a real TEE)", docs_url=None, redoc_url=None, openapi_url=None
    )
    nras = NrasService(state.seed, state.origin)
    if state.config.protocol == "aci":
        # registered first, so the ACI routes win over the legacy ones on shared paths
        state.aci_sessions = install_aci_routes(app, state)
    app.add_middleware(_EmulatorHeader)
    app.add_middleware(NetworkDelay, rtt=state.config.network_rtt)

    def authorized(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.lower().startswith("bearer ") and bool(auth[7:].strip())

    @app.exception_handler(FaultsHeaderError)
    async def bad_faults(_request: Request, exc: Exception) -> JSONResponse:
        return _error(400, f"bad {FAULTS_HEADER} header: {exc}")

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "Missing or invalid API key", type_="authentication_error")
        data = [
            {
                "id": m.id,
                "object": "model",
                "created": 1735689600,
                "owned_by": "redpill",
                "tee": m.tee,
            }
            for m in state.models.values()
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "Missing or invalid API key", type_="authentication_error")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _error(400, "'model' is required")
        info = state.models.get(body["model"])
        if info is None:
            return _error(
                404, f"The model `{body['model']}` does not exist", code="model_not_found"
            )
        header = _header_faults(request)
        faults = state.faults_for(info.id, header)
        state.stats.chat_requests += 1
        messages = body.get("messages")
        reply = state.script.next(info.id, messages, request=body)
        chat_id = new_chat_id()
        req_hash = hashlib.sha256(raw).hexdigest()

        def remember(sent: bytes) -> None:
            state.stats.chats_completed += 1
            if not info.tee:
                return
            now = state.store.now()
            delay = (
                faults.signature_delay
                if faults.signature_delay is not None
                else state.config.signature_delay
            )
            state.store.put(
                ChatRecord(
                    chat_id=chat_id,
                    model=info.id,
                    served_model=info.served_name,
                    request_sha256=req_hash,
                    response_sha256=hashlib.sha256(sent).hexdigest(),
                    finished_at=now,
                    ttl=(
                        faults.signature_ttl
                        if faults.signature_ttl is not None
                        else state.config.signature_ttl
                    ),
                    ready_after=now + delay,
                    foreign_signer=faults.foreign_signer,
                    sign_other_request=faults.sign_other_request,
                    faults=header,
                )
            )

        if body.get("stream") is True:
            opts = body.get("stream_options")
            usage = isinstance(opts, dict) and opts.get("include_usage") is True
            events = render_sse_events(chat_id, info.id, reply, messages, include_usage=usage)
            if faults.truncate_stream:
                events = events[:-1]
            signed = b"".join(events)
            sent_events = tamper_sse(events, faults.tamper_response)
            return EventStreamResponse(
                sent_events,
                on_complete=lambda: remember(signed),
                reset_after=max(1, len(events) // 2) if faults.reset_mid_stream else None,
                headers={"Cache-Control": "no-cache"},
                interval=stream_event_interval(
                    stream_interval=state.config.stream_interval,
                    time_per_token=state.config.time_per_token,
                    tokens=completion_tokens(reply),
                    events=len(events),
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
        sent = tamper_json(out, faults.tamper_response)
        remember(out)
        if faults.reset_mid_stream:
            return ResetResponse(sent)
        if state.config.gzip and "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                gzip.compress(sent),
                media_type="application/json",
                headers={"Content-Encoding": "gzip"},
            )
        return Response(sent, media_type="application/json")

    @app.get("/v1/signature/{chat_id:path}")
    async def signature(
        request: Request, chat_id: str, model: str | None = None, signing_algo: str | None = None
    ) -> Response:
        if not authorized(request):
            return _error(401, "Missing or invalid API key", type_="authentication_error")
        algo = (signing_algo or state.config.signing_algo).lower()
        if algo not in ("ecdsa", "ed25519"):
            return _error(400, f"unsupported signing_algo {signing_algo!r}")
        if model is not None and model in state.models and not state.models[model].tee:
            return _error(
                404,
                f"Model {model} does not support response signatures",
                type_="not_found_error",
                code="model_not_verifiable",
            )
        record = state.store.get(chat_id)
        faults = state.faults_for(
            record.model if record else model, record.faults if record else None
        )
        faults = faults.merged(_header_faults(request))
        if len(state.stats.signature_lookups) > 100_000:
            state.stats.signature_lookups.clear()
        state.stats.signature_lookups[chat_id] += 1
        if faults.lookup_delay > 0:
            await asyncio.sleep(faults.lookup_delay)
        fault = faults.signature_fault(state.stats.signature_lookups[chat_id] - 1)
        if fault == "not_ready":
            return _error(404, NOT_FOUND_MESSAGE, type_="not_found_error")
        if fault == "wrong_node":
            return _error(
                404,
                NOT_FOUND_MESSAGE,
                type_="not_found_error",
                headers={"X-Emulator-Node": "node-b"},
            )
        if fault == "rate_limited":
            hdrs = (
                {"Retry-After": f"{faults.retry_after:g}"}
                if faults.retry_after is not None
                else None
            )
            return _error(429, "Rate limit exceeded", type_="rate_limit_error", headers=hdrs)
        if fault == "server_error":
            return _error(faults.server_error_status, "upstream error", type_="server_error")
        if fault == "error_code_envelope":
            return JSONResponse({"error_code": 404, "message": NOT_FOUND_MESSAGE})
        if record is None or state.store.now() < record.ready_after:
            return _error(404, NOT_FOUND_MESSAGE, type_="not_found_error")
        keys = state.foreign_keys if record.foreign_signer else state.keys
        text = record.text(state.config.signed_text_parts)
        return JSONResponse(
            {
                "text": text,
                "signature": keys.sign(algo, text),
                "signing_address": keys.address(algo),
                "signing_algo": algo,
            }
        )

    @app.get("/v1/attestation/report")
    async def report(
        request: Request,
        model: str | None = None,
        nonce: str | None = None,
        signing_algo: str | None = None,
        signing_address: str | None = None,
    ) -> Response:
        if not authorized(request):
            return _error(401, "Missing or invalid API key", type_="authentication_error")
        del signing_address  # one node per model: the report names its own signer
        info = state.models.get(model or "")
        if info is None or not info.tee:
            return _error(
                404,
                f"Model {model} does not support attestation",
                type_="not_found_error",
                code="model_not_verifiable",
            )
        algo = (signing_algo or state.config.signing_algo).lower()
        if algo not in ("ecdsa", "ed25519"):
            return _error(400, f"unsupported signing_algo {signing_algo!r}")
        if nonce is None:
            nonce = os.urandom(32).hex()
        elif not _HEX64.match(nonce):
            return _error(400, "nonce must be 64 hex characters")
        header = _header_faults(request)
        state.stats.attestation_fetches += 1
        if len(state.stats.attestation_nonces) > 10_000:
            del state.stats.attestation_nonces[:5_000]
        state.stats.attestation_nonces.append(nonce.lower())
        faults = state.faults_for(info.id, header)
        if len(state.nonce_models) > 10_000:
            state.nonce_models.clear()
        body = dumps(
            build_report(state, model=info.id, nonce_hex=nonce.lower(), algo=algo, faults=faults)
        )
        if state.take_attestation_reset(info.id, header):
            return ResetResponse(body)
        return Response(body, media_type="application/json")

    _pccs_routes(app, state)

    @app.post("/v3/attest/gpu")
    async def attest_gpu(request: Request) -> Response:
        state.stats.nras_calls += 1
        raw = await request.body()
        try:
            nonce = json.loads(raw).get("nonce")
        except (ValueError, AttributeError):
            nonce = None
        model = state.nonce_models.get(nonce) if isinstance(nonce, str) else None
        faults = state.faults_for(model, _header_faults(request))
        try:
            answer = nras.attest(
                raw, wrong_nonce=faults.gpu_wrong_nonce, unknown_key=faults.gpu_unknown_key
            )
        except PayloadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(answer)

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        state.stats.jwks_calls += 1
        return JSONResponse(nras.jwks())

    return app


def _pccs_routes(app: FastAPI, state: EmulatorState) -> None:
    """The PCCS paths dcap-qvl's ``get_collateral`` requests (see the package docstring)."""
    col, pki = state.collateral, state.pki

    def count(request: Request) -> None:
        state.stats.pccs_calls[request.url.path] += 1

    @app.get("/sgx/certification/v4/pckcrl")
    async def pckcrl(
        request: Request, ca: str = "processor", encoding: str | None = None
    ) -> Response:
        count(request)
        body = pki.pck_crl_der if encoding == "der" else pki.pck_crl_der.hex().encode()
        return Response(
            body,
            media_type="application/pkix-crl",
            headers={"SGX-PCK-CRL-Issuer-Chain": col.chain_header(pki.pck_crl_issuer_chain_pem)},
        )

    @app.get("/sgx/certification/v4/rootcacrl")
    async def rootcacrl(request: Request) -> Response:
        count(request)
        return Response(pki.root_crl_der.hex().encode(), media_type="text/plain")

    @app.get("/tdx/certification/v4/tcb")
    @app.get("/sgx/certification/v4/tcb")
    async def tcb(request: Request, fmspc: str = "") -> Response:
        count(request)
        if fmspc.lower() != json.loads(col.tcb_info)["fmspc"]:
            return JSONResponse({"error": "no TCB info for this FMSPC"}, status_code=404)
        return Response(
            col.tcb_body(),
            media_type="application/json",
            headers={"TCB-Info-Issuer-Chain": col.chain_header(pki.tcb_chain_pem)},
        )

    @app.get("/tdx/certification/v4/qe/identity")
    @app.get("/sgx/certification/v4/qe/identity")
    async def qe_identity(request: Request) -> Response:
        count(request)
        return Response(
            col.qe_identity_body(),
            media_type="application/json",
            headers={"SGX-Enclave-Identity-Issuer-Chain": col.chain_header(pki.tcb_chain_pem)},
        )
