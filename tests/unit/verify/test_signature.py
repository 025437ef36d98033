"""check_signature: exact-byte hashes, 2/3-part signed texts, ecdsa (EIP-191) and ed25519."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from redpill_integrations.policy import VerificationPolicy
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify import SignatureRecord, check_signature
from redpill_integrations.verify.signature import parse_signed_text, recover_eip191_address
from tests.unit.verify._vectors import vector_bytes, vector_json

SEED_SIGNER = "0xD8414F83c1335627b31d08Eba6d2dA5Fa53A0A83"
DOC_SIGNER = "0xc51268C9b46140619CBC066A34441a6ca51F85f9"
POLICY = VerificationPolicy()
REQ = b'{"model":"phala/x","messages":[{"role":"user","content":"hi"}]}'
RESP = b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "hello"}}]}'


def h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sample_record(name: str) -> SignatureRecord:
    data = vector_json(name)["signature_response"]
    return SignatureRecord.from_json(json.dumps(data).encode())


def eth_sign(text: str, key: bytes) -> str:
    return str(Account.sign_message(encode_defunct(text=text), private_key=key).signature.hex())


ETH_KEY = bytes(range(1, 33))
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ETH_ADDRESS = Account.from_key(ETH_KEY).address


def ecdsa_record(
    text: str, *, address: str | None = ETH_ADDRESS, sig: str | None = None, key: bytes = ETH_KEY
) -> SignatureRecord:
    return SignatureRecord(
        text=text,
        signature=sig if sig is not None else eth_sign(text, key),
        signing_algo="ecdsa",
        signing_address=address,
    )


# --- the published samples ------------------------------------------------------------------


def test_seed_doc_signature_recovers_to_the_published_signer() -> None:
    record = sample_record("phala_doc_2025_signature_sample.json")
    assert not record.signature.startswith("0x")  # the seed sample's hex has no prefix
    result = check_signature(
        record, request_body=b"", response_body=b"", streamed=True, policy=POLICY
    )
    assert result.checks["signature"] is CheckOutcome.PASS
    assert result.signer == SEED_SIGNER.lower()[2:]


@pytest.mark.parametrize(
    "name", ["phala_doc_2025-09_signature_sample.json", "phala_doc_2025-08_signature_sample.json"]
)
def test_doc_signatures_recover_to_their_signing_address(name: str) -> None:
    record = sample_record(name)
    assert record.signature.startswith("0x") and record.signing_address == DOC_SIGNER
    result = check_signature(
        record, request_body=b"", response_body=b"", streamed=True, policy=POLICY
    )
    assert result.checks["signature"] is CheckOutcome.PASS
    assert result.signer == DOC_SIGNER.lower()[2:]


def test_2025_09_request_body_hashes_to_the_signed_request_field() -> None:
    record = sample_record("phala_doc_2025-09_signature_sample.json")
    body = vector_bytes("phala_doc_2025-09_request_body.json")
    sse = vector_bytes("phala_doc_2025-09_response_body_as_published.sse")
    result = check_signature(
        record, request_body=body, response_body=sse, streamed=True, policy=POLICY
    )
    assert result.checks["request_hash"] is CheckOutcome.PASS
    # The doc's response body is illustrative: its hash does not match, and we say so.
    assert result.checks["response_hash"] is CheckOutcome.FAIL
    assert result.reasons == (Reason.RESPONSE_HASH_MISMATCH,)


def test_rewritten_seed_request_body_is_a_request_hash_mismatch() -> None:
    record = sample_record("phala_doc_2025_signature_sample.json")
    body = vector_bytes("phala_doc_2025_request_body_as_published.json")
    result = check_signature(
        record, request_body=body, response_body=b"", streamed=True, policy=POLICY
    )
    assert result.checks["request_hash"] is CheckOutcome.FAIL
    assert Reason.REQUEST_HASH_MISMATCH in result.reasons


def test_flipped_text_recovers_another_address() -> None:
    record = sample_record("phala_doc_2025_signature_sample.json")
    flipped = dataclasses.replace(record, text="f" + record.text[1:])
    assert flipped.text != record.text
    result = check_signature(
        flipped, request_body=b"", response_body=b"", streamed=True, policy=POLICY
    )
    assert result.signer is not None and result.signer != SEED_SIGNER.lower()[2:]


def test_flipped_text_with_signing_address_is_signature_invalid() -> None:
    record = sample_record("phala_doc_2025-09_signature_sample.json")
    flipped = dataclasses.replace(record, text=record.text[:-1] + "0")
    result = check_signature(
        flipped, request_body=b"", response_body=b"", streamed=True, policy=POLICY
    )
    assert result.checks["signature"] is CheckOutcome.FAIL
    assert result.signer is None
    assert Reason.SIGNATURE_INVALID in result.reasons


@pytest.mark.parametrize("pos", [10, 70, 129])
def test_flipped_signature_byte_never_recovers_the_signer(pos: int) -> None:
    record = sample_record("phala_doc_2025-09_signature_sample.json")
    sig = record.signature
    char = "1" if sig[pos] != "1" else "2"
    flipped = dataclasses.replace(record, signature=sig[:pos] + char + sig[pos + 1 :])
    result = check_signature(
        flipped, request_body=b"", response_body=b"", streamed=True, policy=POLICY
    )
    assert result.signer != DOC_SIGNER.lower()[2:]
    assert result.checks["signature"] is CheckOutcome.FAIL
    assert Reason.SIGNATURE_INVALID in result.reasons


# --- our own signatures: the whole happy path and every failure ------------------------------


def test_two_part_text_verifies_with_bytes_hash_mode() -> None:
    result = check_signature(
        ecdsa_record(f"{h(REQ)}:{h(RESP)}"),
        request_body=REQ,
        response_body=RESP,
        streamed=False,
        policy=POLICY,
    )
    assert all(v is CheckOutcome.PASS for v in result.checks.values())
    assert result.reasons == () and result.hash_mode == "bytes"
    assert result.signer == ETH_ADDRESS.lower()[2:] and result.served_model is None
    assert (result.request_sha256, result.response_sha256) == (h(REQ), h(RESP))


def test_three_part_text_with_colons_in_the_model_name() -> None:
    text = f"org/model:v2:{h(REQ)}:{h(RESP)}"
    result = check_signature(
        ecdsa_record(text), request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
    )
    assert result.reasons == () and result.served_model == "org/model:v2"


def test_uppercase_address_and_prefixless_signature_are_accepted() -> None:
    text = f"{h(REQ)}:{h(RESP)}"
    sig = eth_sign(text, ETH_KEY).removeprefix("0x")
    result = check_signature(
        ecdsa_record(text, address=ETH_ADDRESS.upper().replace("0X", "0x"), sig=sig),
        request_body=REQ,
        response_body=RESP,
        streamed=False,
        policy=POLICY,
    )
    assert result.reasons == ()


def test_signature_by_another_key_is_signature_invalid() -> None:
    text = f"{h(REQ)}:{h(RESP)}"
    record = ecdsa_record(text, key=bytes(range(2, 34)))
    result = check_signature(
        record, request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
    )
    assert result.reasons == (Reason.SIGNATURE_INVALID,)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "nohashes:at:all",
        f"{'a' * 64}",
        f"{'a' * 63}:{'b' * 64}",
        f"{'g' * 64}:{'b' * 64}",
        f":{'a' * 64}:{'b' * 64}",
        f"0x{'a' * 62}:{'b' * 64}",
        f"{'a' * 64}:{'b' * 64}:",
        f"{'a' * 64} :{'b' * 64}",
    ],
)
def test_malformed_signed_text(text: str) -> None:
    result = check_signature(
        ecdsa_record(text), request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
    )
    assert Reason.SIGNED_TEXT_MALFORMED in result.reasons
    assert result.checks["request_hash"] is CheckOutcome.FAIL
    assert result.checks["response_hash"] is CheckOutcome.FAIL


def test_request_and_response_mismatch_each_have_their_code() -> None:
    text = f"{h(REQ)}:{h(RESP)}"
    result = check_signature(
        ecdsa_record(text),
        request_body=REQ + b" ",
        response_body=RESP + b"x",
        streamed=True,
        policy=POLICY,
    )
    assert result.reasons == (Reason.REQUEST_HASH_MISMATCH, Reason.RESPONSE_HASH_MISMATCH)


def test_json_normalized_fallback_only_for_non_streamed_bodies() -> None:
    compact = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"h\\u00e9llo"}}]}'
    normalized = json.dumps(json.loads(compact)).encode()
    assert normalized != compact
    record = ecdsa_record(f"{h(REQ)}:{h(normalized)}")
    ok = check_signature(
        record, request_body=REQ, response_body=compact, streamed=False, policy=POLICY
    )
    assert ok.reasons == () and ok.hash_mode == "json-normalized"
    assert ok.response_sha256 == h(compact)  # the evidence is always the hash of the bytes
    streamed = check_signature(
        record, request_body=REQ, response_body=compact, streamed=True, policy=POLICY
    )
    assert streamed.reasons == (Reason.RESPONSE_HASH_MISMATCH,) and streamed.hash_mode is None
    off = check_signature(
        record,
        request_body=REQ,
        response_body=compact,
        streamed=False,
        policy=VerificationPolicy(allow_json_normalized_hash=False),
    )
    assert off.reasons == (Reason.RESPONSE_HASH_MISMATCH,)


def test_duplicate_json_keys_are_rejected_in_the_normalized_path() -> None:
    body = b'{"id":"a","id":"b"}'
    record = ecdsa_record(f"{h(REQ)}:{h(json.dumps({'id': 'b'}).encode())}")
    result = check_signature(
        record, request_body=REQ, response_body=body, streamed=False, policy=POLICY
    )
    assert result.reasons == (Reason.DUPLICATE_JSON_KEY,)
    assert result.checks["response_hash"] is CheckOutcome.FAIL


def test_ed25519_signature_verifies_and_wrong_key_fails() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw().hex()
    text = f"served:{h(REQ)}:{h(RESP)}"
    record = SignatureRecord(
        text=text,
        signature=key.sign(text.encode()).hex(),
        signing_algo="ed25519",
        signing_address=public,
    )
    ok = check_signature(
        record, request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
    )
    assert ok.reasons == () and ok.signer == public
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    for bad in (
        dataclasses.replace(record, signing_address=other),
        dataclasses.replace(record, signing_address=None),
        dataclasses.replace(record, signing_address="0x" + public[:-2]),
        dataclasses.replace(record, text=text.replace("served", "serveD")),
    ):
        result = check_signature(
            bad, request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
        )
        assert result.checks["signature"] is CheckOutcome.FAIL, bad
        assert Reason.SIGNATURE_INVALID in result.reasons and result.signer is None


@pytest.mark.parametrize(
    "sig",
    ["", "0x", "zz" * 65, "ab" * 64, "ab" * 66, "00" * 65, "ab" * 64 + "05", "0x" + "ff" * 65],
)
def test_unusable_ecdsa_signatures_are_signature_invalid(sig: str) -> None:
    result = check_signature(
        ecdsa_record(f"{h(REQ)}:{h(RESP)}", sig=sig, address=None),
        request_body=REQ,
        response_body=RESP,
        streamed=False,
        policy=POLICY,
    )
    assert result.reasons == (Reason.SIGNATURE_INVALID,) and result.signer is None


def test_unknown_algorithm_and_malformed_address_are_signature_invalid() -> None:
    text = f"{h(REQ)}:{h(RESP)}"
    for record in (
        dataclasses.replace(ecdsa_record(text), signing_algo="rsa"),
        ecdsa_record(text, address="0x1234"),
    ):
        result = check_signature(
            record, request_body=REQ, response_body=RESP, streamed=False, policy=POLICY
        )
        assert result.reasons == (Reason.SIGNATURE_INVALID,)


@settings(max_examples=25, deadline=None)
@given(secret=st.integers(min_value=1, max_value=SECP256K1_N - 1), text=st.text(max_size=200))
def test_recovery_equals_eth_account(secret: int, text: str) -> None:
    key = secret.to_bytes(32, "big")
    account = Account.from_key(key)
    sig = Account.sign_message(encode_defunct(text=text), private_key=key).signature
    expected = Account.recover_message(encode_defunct(text=text), signature=sig)
    assert expected == account.address
    assert recover_eip191_address(text, bytes(sig)) == expected.lower()[2:]


def test_parse_signed_text_normalises_case() -> None:
    parsed = parse_signed_text(f"{'A' * 64}:{'b' * 64}")
    assert parsed.request_sha256 == "a" * 64 and parsed.served_model is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "a", "text": "b", "signature": "00"}',
        b"[" * 100_000,
        b"not json",
        b"[]",
        b'{"text": 1}',
        b" " * (1 << 20) + b"{}",
    ],
)
def test_signature_record_parsing_refuses_bad_bodies(body: bytes) -> None:
    from redpill_integrations.errors import MalformedEvidence

    with pytest.raises(MalformedEvidence):
        SignatureRecord.from_json(body)
