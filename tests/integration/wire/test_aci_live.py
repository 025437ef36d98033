"""The whole ACI path against api.redpill.ai (skipped without ``REDPILL_API_KEY``).

Production trust anchors and the default policy: the gateway probe, the gateway's attestation
(DCAP collateral from Intel's PCS), a JSON and a streamed chat through a plain ``openai`` client,
their receipts, and offline re-verification of the stored receipt.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import openai
import pytest

from redpill_integrations.receipts import Receipt, reverify
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("REDPILL_API_KEY"), reason="REDPILL_API_KEY not set"),
]

MODEL = os.environ.get("REDPILL_LIVE_MODEL", "phala/deepseek-chat-v3-0324")


def _chat(verifier: RedpillVerifier, client: openai.OpenAI, *, stream: bool) -> Receipt:
    tag = verifier.recorder.new_tag()
    out: Any = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello in three words."}],
        stream=stream,
        max_tokens=16,
        extra_headers={CAPTURE_HEADER: tag},
        extra_body=verifier.request_extras("strict"),
    )
    if stream:
        list(out)
    return verifier.verify_exchange(verifier.recorder.take(tag))


def test_the_live_gateway_is_aci_and_its_answers_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.environ["REDPILL_API_KEY"]
    base = os.environ.get("REDPILL_BASE_URL", "https://api.redpill.ai/v1")
    with RedpillVerifier(base_url=base, api_key=key) as verifier:
        gateway = verifier.gateway()
        assert gateway.protocol == "aci", gateway
        attestation = verifier.attest_gateway()
        assert attestation.passed, attestation.verdict and attestation.verdict.detail
        client = openai.OpenAI(base_url=base, api_key=key, http_client=verifier.http_client())
        receipts = [_chat(verifier, client, stream=False), _chat(verifier, client, stream=True)]
    for receipt in receipts:
        result = receipt.result
        assert (result.status.value, result.reasons) == ("verified", ()), result.detail
        assert (result.protocol, result.signed_by) == ("aci", "gateway")
        assert result.aci is not None and result.aci.upstream is not None
    stored = Receipt.from_json(receipts[0].to_json())

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network is off")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    again = reverify(stored)
    assert (again.status.value, again.reasons) == ("verified", ()), again.detail
