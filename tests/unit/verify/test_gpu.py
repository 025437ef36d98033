"""NRAS tokens: the real recorded answer and JWKS, and every forged or rejected variant."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import production_nras_ca_certs
from redpill_integrations.results import Reason
from redpill_integrations.verify.gpu import payload_gpu_count, payload_nonce, verify_nras
from tests.unit.verify._vectors import (
    NEAR_NONCE,
    NEAR_NOW,
    NRAS_ISSUER,
    TEST_PINS,
    TokenMinter,
    b64url,
    cached,
    dump,
    nras_answer,
    vector_json,
)

REAL_RESPONSE = "teep_neardirect_nras_response.json"
REAL_JWKS = "teep_neardirect_nras_jwks.json"


def verify_real(
    response: bytes | None = None,
    jwks: bytes | None = None,
    *,
    nonce: str = NEAR_NONCE,
    issuer: str = NRAS_ISSUER,
    now: datetime = NEAR_NOW,
    expected: int | None = 8,
) -> Any:
    return verify_nras(
        response if response is not None else cached(REAL_RESPONSE),
        jwks if jwks is not None else cached(REAL_JWKS),
        nonce=nonce,
        issuer=issuer,
        now=now,
        ca_certs_der=production_nras_ca_certs(),
        expected_gpus=expected,
    )


def test_real_nras_answer_verifies_against_the_recorded_jwks() -> None:
    result = verify_real()
    assert result.reason is None, result.detail
    assert result.gpu_count == 8
    assert result.claims["overall_att_result"] is True
    assert {g["measres"] for g in result.claims["gpus"].values()} == {"success"}
    assert result.valid_until == datetime(2026, 6, 29, 3, 6, 34, tzinfo=UTC)


def test_real_payload_nonce_and_count() -> None:
    payload = cached("teep_neardirect_attestation_report.json")
    nvidia = json.loads(payload)["nvidia_payload"]
    assert payload_nonce(nvidia) == NEAR_NONCE
    assert payload_gpu_count(nvidia) == 8
    assert cached("teep_neardirect_nras_response.json")  # answer to exactly this payload


@pytest.mark.parametrize(
    ("now", "detail"),
    [
        (NEAR_NOW + timedelta(hours=2), "token has expired"),
        (datetime(2026, 6, 29, 3, 6, 34, tzinfo=UTC), "token has expired"),  # exp is exclusive
        (NEAR_NOW - timedelta(hours=1), "token is not yet valid"),
    ],
)
def test_real_tokens_outside_their_validity(now: datetime, detail: str) -> None:
    result = verify_real(now=now)
    assert (result.reason, result.detail) == (Reason.GPU_TOKEN_INVALID, detail)


def test_wrong_issuer_wrong_nonce_and_gpu_count() -> None:
    assert verify_real(issuer="https://nras.example").reason is Reason.GPU_TOKEN_INVALID
    assert verify_real(nonce="00" * 32).reason is Reason.GPU_NONCE_MISMATCH
    assert verify_real(expected=7).reason is Reason.GPU_CLAIMS_REJECTED


def test_a_jwks_without_nvidias_keys_rejects_the_real_tokens() -> None:
    result = verify_real(jwks=TokenMinter().jwks())
    assert (result.reason, result.detail) == (
        Reason.GPU_TOKEN_INVALID,
        "token kid is not in the JWKS",
    )


def test_swapped_key_under_the_real_kid_is_rejected() -> None:
    header = json.loads(_b64decode(json.loads(cached(REAL_RESPONSE))[0][1].split(".")[0]))
    impostor = TokenMinter(kid=header["kid"])
    result = verify_real(jwks=impostor.jwks())
    assert (result.reason, result.detail) == (
        Reason.GPU_TOKEN_INVALID,
        "token signature does not verify",
    )


@pytest.mark.parametrize(
    ("name", "gpus"),
    [("vllmproxy_nras_response_1gpu.json", 1), ("vllmproxy_nras_response_ppcie_8gpu.json", 8)],
)
def test_vllm_proxy_answers_parse_but_are_signed_by_keys_not_in_the_jwks(
    name: str, gpus: int
) -> None:
    answer = vector_json(name)
    platform = json.loads(_b64decode(answer[0][1].split(".")[1]))
    assert platform["x-nvidia-overall-att-result"] is True and len(platform["eat_nonce"]) == 64
    assert len(answer[1]) == gpus
    for gpu, token in answer[1].items():
        assert platform["submods"][gpu][1][1] == hashlib.sha256(token.encode()).hexdigest()
    result = verify_real(response=cached(name), nonce=platform["eat_nonce"], expected=gpus)
    assert (result.reason, result.detail) == (
        Reason.GPU_TOKEN_INVALID,
        "token kid is not in the JWKS",
    )


def _b64decode(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- tokens we sign ourselves: the claim rules behind a valid signature -----------------------


def verify_minted(answer: bytes, minter: TokenMinter, expected: int | None = 1) -> Any:
    return verify_nras(
        answer,
        minter.jwks(),
        nonce=NEAR_NONCE,
        issuer=NRAS_ISSUER,
        now=NEAR_NOW,
        ca_certs_der=TEST_PINS,
        expected_gpus=expected,
    )


def test_minted_answer_verifies() -> None:
    minter = TokenMinter()
    result = verify_minted(nras_answer(minter, gpus=2), minter, expected=2)
    assert result.reason is None and result.gpu_count == 2


@pytest.mark.parametrize(
    ("platform", "gpu", "reason"),
    [
        ({"x-nvidia-overall-att-result": False}, None, Reason.GPU_CLAIMS_REJECTED),
        ({"x-nvidia-overall-att-result": "true"}, None, Reason.GPU_CLAIMS_REJECTED),
        ({"eat_nonce": "11" * 32}, None, Reason.GPU_NONCE_MISMATCH),
        (None, {"eat_nonce": "11" * 32}, Reason.GPU_NONCE_MISMATCH),
        (None, {"measres": "fail"}, Reason.GPU_CLAIMS_REJECTED),
        (None, {"dbgstat": "enabled"}, Reason.GPU_CLAIMS_REJECTED),
        (None, {"x-nvidia-gpu-attestation-report-nonce-match": False}, Reason.GPU_NONCE_MISMATCH),
        ({"iss": "https://evil.example"}, None, Reason.GPU_TOKEN_INVALID),
        ({"exp": None}, None, Reason.GPU_TOKEN_INVALID),
        ({"exp": True}, None, Reason.GPU_TOKEN_INVALID),
        ({"nbf": "soon"}, None, Reason.GPU_TOKEN_INVALID),
        ({"submods": {}}, None, Reason.GPU_TOKEN_INVALID),
        (
            {"submods": {"GPU-0": ["DIGEST", ["SHA-256", "00" * 32]]}},
            None,
            Reason.GPU_TOKEN_INVALID,
        ),
        ({"submods": {"GPU-0": "digest"}}, None, Reason.GPU_TOKEN_INVALID),
        (
            {"submods": {"GPU-9": ["DIGEST", ["SHA-256", "00" * 32]]}},
            None,
            Reason.GPU_TOKEN_INVALID,
        ),
    ],
)
def test_minted_claim_rules(
    platform: dict[str, Any] | None, gpu: dict[str, Any] | None, reason: Reason
) -> None:
    minter = TokenMinter()
    result = verify_minted(nras_answer(minter, platform=platform, gpu=gpu), minter)
    assert result.reason is reason, result.detail


def test_alg_none_and_hmac_tokens_are_rejected() -> None:
    minter = TokenMinter()
    answer = json.loads(nras_answer(minter))
    claims = answer[0][1].split(".")[1]
    for header in (
        {"alg": "none", "kid": minter.kid},
        {"alg": "HS256", "kid": minter.kid},
        {"alg": "ES256", "kid": minter.kid},
        {"kid": minter.kid},
    ):
        forged = f"{b64url(dump(header))}.{claims}."
        result = verify_minted(dump([["JWT", forged], answer[1]]), minter)
        assert result.reason is Reason.GPU_TOKEN_INVALID, header
        assert "alg" in (result.detail or "")
    # ... even when a real ES384 signature is attached to a header claiming another alg
    signed = minter.token(json.loads(_b64decode(claims)), header={"alg": "none", "kid": minter.kid})
    assert verify_minted(dump([["JWT", signed], answer[1]]), minter).reason is (
        Reason.GPU_TOKEN_INVALID
    )


def test_token_signed_by_another_key_is_rejected() -> None:
    minter, other = TokenMinter(), TokenMinter()  # same kid, different keys
    result = verify_minted(nras_answer(other), minter)
    assert (result.reason, result.detail) == (
        Reason.GPU_TOKEN_INVALID,
        "token signature does not verify",
    )


def test_swapped_gpu_token_breaks_the_submod_digest() -> None:
    minter = TokenMinter()
    answer = json.loads(nras_answer(minter, gpus=2))
    answer[1]["GPU-0"], answer[1]["GPU-1"] = answer[1]["GPU-1"], answer[1]["GPU-0"]
    assert answer[1]["GPU-0"] != answer[1]["GPU-1"]
    result = verify_minted(dump(answer), minter, expected=2)
    assert result.reason is Reason.GPU_TOKEN_INVALID and "digest" in (result.detail or "")


@pytest.mark.parametrize(
    "response",
    [
        b"",
        b"{}",
        b"[]",
        b"null",
        b'[["JWT"], {}]',
        b'[["JWS", "a.b.c"], {}]',
        b'[["JWT", 5], {}]',
        b'[["JWT", "a.b"], {}]',
        b'[["JWT", "a.b.c"], {}]',
        b'[["JWT", "!!.??.**"], {}]',
        b'[["JWT", "a.b.c"], []]',
        b"[" * 50_000,
    ],
)
def test_malformed_nras_answers_are_token_invalid(response: bytes) -> None:
    minter = TokenMinter()
    result = verify_minted(response, minter)
    assert result.reason is Reason.GPU_TOKEN_INVALID


@pytest.mark.parametrize(
    "jwks",
    [
        b"",
        b"[]",
        b'{"keys": 1}',
        b'{"keys": [1, {"kty": "EC"}]}',
        b'{"keys": [{"kty": "EC", "crv": "P-384", "kid": "test-kid", "x": "AA", "y": "AA"}]}',
    ],
)
def test_malformed_jwks_never_verifies(jwks: bytes) -> None:
    minter = TokenMinter()
    result = verify_nras(
        nras_answer(minter),
        jwks,
        nonce=NEAR_NONCE,
        issuer=NRAS_ISSUER,
        now=NEAR_NOW,
        ca_certs_der=TEST_PINS,
    )
    assert result.reason is Reason.GPU_TOKEN_INVALID


def test_off_curve_jwk_is_skipped() -> None:
    minter = TokenMinter()
    jwk = minter.jwk()
    jwk["y"] = b64url((1).to_bytes(48, "big"))
    result = verify_nras(
        nras_answer(minter),
        dump({"keys": [jwk]}),
        nonce=NEAR_NONCE,
        issuer=NRAS_ISSUER,
        now=NEAR_NOW,
        ca_certs_der=TEST_PINS,
    )
    assert (result.reason, result.detail) == (
        Reason.GPU_TOKEN_INVALID,
        "token kid is not in the JWKS",
    )


@pytest.mark.parametrize(
    "payload",
    ["", "[]", '{"nonce": 1}', '{"nonce": "00"}', "{bad", '{"nonce": "00", "nonce": "11"}'],
)
def test_malformed_nvidia_payload_is_a_typed_error(payload: str) -> None:
    with pytest.raises(EvidenceError):
        payload_nonce(payload)
