"""Raw loopback helpers for emulator tests: httpx only, no package wire layer."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx

from redpill_integrations.emulator import Emulator

TEE_MODEL = "phala/gpt-oss-120b"


def client(emu: Emulator, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=emu.base_url,
        timeout=10,
        headers={
            "Authorization": f"Bearer {emu.api_key}",
            "Accept-Encoding": "identity",
            **headers,
        },
    )


def chat_body(
    *, stream: bool, model: str = TEE_MODEL, text: str = "hello", usage: bool = True
) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        if usage:
            body["stream_options"] = {"include_usage": True}
    # deliberately not the canonical json.dumps form: the hash is over the exact bytes
    return json.dumps(body, indent=1).encode()


def chat(c: httpx.Client, body: bytes, **headers: str) -> tuple[str, bytes, httpx.Response]:
    """POST the body; returns (chat id, exact response bytes, response)."""
    r = c.post(
        "/chat/completions", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert r.status_code == 200, r.text
    raw = r.content
    if raw.startswith(b"data: "):
        chat_id = json.loads(raw.split(b"\n", 1)[0][len(b"data: ") :])["id"]
    else:
        chat_id = json.loads(raw)["id"]
    return chat_id, raw, r


def sse_events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e]


def signature(
    c: httpx.Client, chat_id: str, *, model: str = TEE_MODEL, algo: str = "ecdsa", **headers: str
) -> httpx.Response:
    return c.get(
        f"/signature/{chat_id}", params={"model": model, "signing_algo": algo}, headers=headers
    )


def report(
    c: httpx.Client,
    *,
    model: str = TEE_MODEL,
    algo: str = "ecdsa",
    nonce: str | None = None,
    **headers: str,
) -> tuple[str, dict[str, Any]]:
    nonce = nonce or os.urandom(32).hex()
    r = c.get(
        "/attestation/report",
        params={"model": model, "nonce": nonce, "signing_algo": algo},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return nonce, r.json()


def replay(events: list[dict[str, Any]]) -> list[str]:
    mrs = [bytes(48)] * 4
    for e in events:
        mrs[e["imr"]] = hashlib.sha384(mrs[e["imr"]] + bytes.fromhex(e["digest"])).digest()
    return [m.hex() for m in mrs]


def quote_rtmrs(quote: bytes) -> list[str]:
    return [quote[376 + 48 * i : 424 + 48 * i].hex() for i in range(4)]


def report_data(quote: bytes) -> bytes:
    return quote[568:632]
