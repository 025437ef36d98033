"""A local, Redpill-compatible server with its own test PKI. It is NOT a real TEE.

Every response carries ``X-Redpill-Emulator: 1``; the CVM is named ``redpill-emulator-…``; its DCAP
root CA, PCCS and NRAS are the emulator's own, so only a client that explicitly loads the emulator
trust file (:meth:`TrustAnchors.from_file`) accepts what it serves; ``dcap_qvl.verify`` with
Intel's root rejects every emulator quote.

Two protocols. The default, ``Emulator()`` (CLI ``redpill emulator``), serves what api.redpill.ai
serves: Phala's ACI gateway (generation B) with its own test dstack KMS, keyset, receipts,
sessions and legacy aliases; see :mod:`redpill_integrations.emulator.aci.routes` and
``docs/aci-emulator.md``. ``Emulator(protocol="legacy")`` (CLI ``--protocol legacy``) serves the
per-node signature protocol described below.

Quick start::

    from redpill_integrations.emulator import Emulator, Faults, Reply

    with Emulator() as emu:                       # binds 127.0.0.1 on an ephemeral port
        emu.script(replies=[Reply.text("hello")])
        emu.set_faults(Faults(receipt_not_ready=2), model="phala/gpt-oss-120b")
        ...  # talk to emu.base_url with emu.api_key; verify with emu.trust

Any non-empty bearer token is accepted (``emu.api_key`` is ``sk-redpill-emulator``).

Endpoints (one loopback origin ``http://127.0.0.1:PORT``):

The legacy protocol (``protocol="legacy"``), under ``/v1``:
  ``GET /v1/models``; ``POST /v1/chat/completions`` (JSON, or SSE with ``stream: true``;
  usage chunk with ``stream_options.include_usage``); ``GET /v1/signature/{chat_id}?model=&
  signing_algo=``; ``GET /v1/attestation/report?model=&nonce=&signing_algo=&signing_address=``.
  Non-TEE models (``openai/gpt-4o-mini``) chat normally; their signature and report answer 404
  ``{"error": {..., "code": "model_not_verifiable"}}``.

PCCS (``pccs_url`` = the origin), exactly what ``dcap_qvl.get_collateral(pccs_url, quote)`` asks:
  ``GET /sgx/certification/v4/pckcrl?ca=processor&encoding=der`` → DER CRL, header
  ``SGX-PCK-CRL-Issuer-Chain`` (URL-encoded PEM); ``GET /sgx/certification/v4/rootcacrl`` → the
  root CA CRL as *hex text*; ``GET /tdx/certification/v4/tcb?fmspc=E1E1E1000000`` →
  ``{"tcbInfo": {...}, "signature": hex}``, header ``TCB-Info-Issuer-Chain``;
  ``GET /tdx/certification/v4/qe/identity?update=standard`` → ``{"enclaveIdentity": {...},
  "signature": hex}``, header ``SGX-Enclave-Identity-Issuer-Chain``. Signatures are raw r‖s hex
  over the compact, key-sorted JSON of the inner object (what serde_json re-serialises).

NRAS (``nras_url`` = ``{origin}/v3/attest/gpu``): ``POST`` the report's ``nvidia_payload`` →
  ``[["JWT", platform_token], {"GPU-0": token, ...}]``, ES384, ``iss`` = the origin, keys at
  ``GET /.well-known/jwks.json`` (``nras_jwks_url``); the key's ``x5c`` chains to the emulator's
  test NRAS CA, which the trust file pins (``nras_ca_certs_der_b64``).

The model: scripted replies (:meth:`Emulator.script`) are served first; otherwise it answers like
a real model where the request asks for structure — ``tools`` get a call of the named (or forced,
or first) tool with arguments generated from its JSON schema, tool results get a text answer that
quotes them, ``response_format`` gets a JSON object (valid against ``json_schema``'s schema) — and
echoes the prompt otherwise (:mod:`redpill_integrations.emulator.structured`). Every answer is
signed and receipted alike.

Latency (seconds, default 0): ``Emulator(network_rtt=…, time_to_first_token=…,
time_per_token=…)`` or ``redpill emulator --network-rtt … --time-to-first-token …
--time-per-token …`` (:mod:`redpill_integrations.emulator.latency`).

PCCS and NRAS are served in both protocols.

Fault injection: :class:`Faults` (see :mod:`redpill_integrations.emulator.faults`), globally, per
model, or per request with the header ``X-Emulator-Faults: <JSON of Faults fields>``.
"""

from redpill_integrations.emulator.__main__ import main
from redpill_integrations.emulator.faults import FAULTS_HEADER, Faults
from redpill_integrations.emulator.model import Reply
from redpill_integrations.emulator.server import API_KEY, Emulator
from redpill_integrations.emulator.state import Stats

__all__ = ["API_KEY", "FAULTS_HEADER", "Emulator", "Faults", "Reply", "Stats", "main"]
