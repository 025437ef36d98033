"""The ACI emulator's legacy report alias fails a legacy verification with its own reason."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import httpx

from redpill_integrations.emulator import Emulator
from redpill_integrations.policy import TrustAnchors, VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify import AttestationEvidence
from redpill_integrations.verify.attestation import verify_attestation


def test_the_emulated_alias_fails_the_legacy_verification_with_its_own_reason(
    aci_emu: Emulator,
) -> None:
    """The ACI emulator's alias binds its key and our nonce exactly as the live one does; the
    legacy verdict is failed ``ACI_ALIAS_REPORT`` for a TEE model and a name that does not exist."""
    nonce = secrets.token_hex(32)
    for model in ("phala/deepseek-chat-v3-0324", "no/such-model"):
        body = httpx.get(
            f"{aci_emu.base_url}/attestation/report",
            params={"model": model, "nonce": nonce, "signing_algo": "ecdsa"},
        ).content
        verdict = verify_attestation(
            AttestationEvidence(report=body, nonce=nonce),
            signer=aci_emu.signing_address,
            policy=VerificationPolicy(require_gpu=False),
            trust=TrustAnchors.from_dict(aci_emu.trust_dict()),
            now=datetime.now(UTC),
        )
        assert verdict.reasons == (Reason.ACI_ALIAS_REPORT,), model
        assert CheckOutcome.PASS not in verdict.checks.values()
