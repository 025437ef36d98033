"""Malformed input of every kind yields a typed error or a verdict with a reason, never a crash.

The core's functions have no catch-all of their own (the one crash guard is
``verify.judge_attestation``'s), so an exception of ours here fails the test instead of hiding
behind a verdict.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from redpill_integrations.errors import EvidenceError
from redpill_integrations.policy import TrustAnchors, VerificationPolicy, production_nras_ca_certs
from redpill_integrations.results import CheckOutcome, Reason
from redpill_integrations.verify import (
    SignatureRecord,
    check_signature,
    parse_report,
    verify_attestation,
)
from redpill_integrations.verify.gpu import verify_nras
from tests.unit.verify.conftest import (
    NEAR_KEY,
    NEAR_NONCE,
    NEAR_NOW,
    NRAS_ISSUER,
    cached,
    dump,
    near_evidence,
    near_report_dict,
)

POLICY = VerificationPolicy()
TRUST = TrustAnchors.production()
FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["ab" * 32, "ab" * 20, "00" * 48, "[]", "{}"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "signing_address",
                    "signing_algo",
                    "intel_quote",
                    "event_log",
                    "info",
                    "tcb_info",
                    "request_nonce",
                    "nvidia_payload",
                    "all_attestations",
                    "gateway_attestation",
                    "model_attestations",
                    "imr",
                    "digest",
                    "event",
                    "event_payload",
                    "event_type",
                    "app_compose",
                    "tls_cert_fingerprint",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


def assert_verdict_is_sane(verdict: Any) -> None:
    if any(v is not CheckOutcome.PASS for v in verdict.checks.values()) or not verdict.checks:
        assert (
            verdict.reasons
            or any(v is CheckOutcome.NOT_CHECKED for v in verdict.checks.values())
            or not verdict.checks
        )
    for reason in verdict.reasons:
        assert isinstance(reason, Reason)


@FAST
@given(value=json_values)
def test_parse_report_on_arbitrary_json(value: Any) -> None:
    try:
        parse_report(dump(value))
    except EvidenceError:
        pass


@FAST
@given(body=st.binary(max_size=2000))
def test_parse_report_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_report(body)
    except EvidenceError:
        pass


FIELDS = [
    "signing_address",
    "signing_algo",
    "request_nonce",
    "intel_quote",
    "nvidia_payload",
    "event_log",
    "info",
    "tls_cert_fingerprint",
]


@SLOW
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_verify_attestation_with_any_field_replaced(field: str, value: Any) -> None:
    data = near_report_dict()
    del data["all_attestations"]
    assume(value != data[field])
    assume(not (field == "event_log" and value is None))  # falls back to tcb_info.event_log
    data[field] = value
    verdict = verify_attestation(
        near_evidence(dump(data)), signer=NEAR_KEY, policy=POLICY, trust=TRUST, now=NEAR_NOW
    )
    assert verdict.reasons, "a replaced security field can never leave a clean verdict"
    assert_verdict_is_sane(verdict)


@SLOW
@given(data=st.data())
def test_verify_attestation_with_truncated_or_flipped_quote(data: st.DataObject) -> None:
    report = near_report_dict()
    del report["all_attestations"]
    quote = bytearray.fromhex(report["intel_quote"])
    if data.draw(st.booleans()):
        quote = quote[: data.draw(st.integers(0, 4000))]
    else:
        # the signed header+TD report and the quote signature (the PEM chain further on may
        # legitimately absorb a flipped newline into other whitespace)
        quote[data.draw(st.integers(0, 632 + 4 + 64 - 1))] ^= data.draw(st.integers(1, 255))
    report["intel_quote"] = quote.hex()
    verdict = verify_attestation(
        near_evidence(dump(report)), signer=NEAR_KEY, policy=POLICY, trust=TRUST, now=NEAR_NOW
    )
    assert verdict.reasons
    assert_verdict_is_sane(verdict)


@SLOW
@given(cut=st.integers(0, 400_000), flip=st.integers(0, 400_000))
def test_verify_attestation_on_damaged_report_bytes(cut: int, flip: int) -> None:
    body = bytearray(cached("teep_neardirect_attestation_report.json"))
    whole = len(body)
    if flip < len(body):
        body[flip] ^= 0x20
    # verify_attestation has no catch-all: a crash of ours fails this test (it is not a verdict)
    verdict = verify_attestation(
        near_evidence(bytes(body[:cut])), signer=NEAR_KEY, policy=POLICY, trust=TRUST, now=NEAR_NOW
    )
    assert_verdict_is_sane(verdict)
    if cut < whole:  # a truncated report is never clean JSON, so never a clean verdict
        assert verdict.reasons


@FAST
@given(
    text=st.text(max_size=300),
    signature=st.text(max_size=200),
    algo=st.sampled_from(["ecdsa", "ed25519", "ECDSA", "", "rsa"]),
    address=st.none() | st.text(max_size=80) | st.sampled_from(["ab" * 20, "0x" + "ab" * 32]),
    streamed=st.booleans(),
    body=st.binary(max_size=300),
)
def test_check_signature_never_raises(
    text: str, signature: str, algo: str, address: str | None, streamed: bool, body: bytes
) -> None:
    record = SignatureRecord(
        text=text, signature=signature, signing_algo=algo, signing_address=address
    )
    result = check_signature(
        record, request_body=body, response_body=body, streamed=streamed, policy=POLICY
    )
    assert result.reasons  # random input is never a verified signature


@FAST
@given(
    response=st.binary(max_size=500) | json_values.map(dump),
    jwks=st.sampled_from([b"", b"{}", cached("teep_neardirect_nras_jwks.json")]),
)
def test_verify_nras_never_raises(response: bytes, jwks: bytes) -> None:
    result = verify_nras(
        response,
        jwks,
        nonce=NEAR_NONCE,
        issuer=NRAS_ISSUER,
        now=NEAR_NOW,
        ca_certs_der=production_nras_ca_certs(),
    )
    assert result.reason is Reason.GPU_TOKEN_INVALID


def test_huge_strings_are_rejected_without_crashing() -> None:
    data = near_report_dict()
    del data["all_attestations"]
    data["info"]["tcb_info"]["app_compose"] = "x" * (5 * 1024 * 1024)
    try:
        parse_report(dump(data))
    except EvidenceError as exc:
        assert exc.reason is Reason.MALFORMED_RESPONSE
    else:  # pragma: no cover
        raise AssertionError("a 5 MB app_compose must be refused")
    deep = json.dumps({"signing_address": "ab" * 20, "intel_quote": "[" * 100_000}).encode()
    try:
        parse_report(deep)
    except EvidenceError:
        pass


def test_deep_json_is_refused_even_with_a_raised_recursion_limit() -> None:
    import sys

    import eth_account  # noqa: F401  (py_ecc, imported by eth_account, raises the limit to 100000)

    assert sys.getrecursionlimit() >= 100_000
    for body in (b"[" * 100_000, b'{"a":' * 50_000, b"[{" * 40 + b"]}" * 40):
        try:
            parse_report(body)
        except EvidenceError as exc:
            assert "nests deeper" in str(exc) or body.startswith(b"[{")
    text = f"{'a' * 64}:{'b' * 64}"  # well formed, so the json-normalized path parses the body
    sig = check_signature(
        SignatureRecord(text=text, signature="", signing_algo="ecdsa"),
        request_body=b"",
        response_body=b"[" * 100_000,
        streamed=False,
        policy=POLICY,
    )
    assert Reason.RESPONSE_HASH_MISMATCH in sig.reasons


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_tricky = st.text(alphabet='[]{}"\\ab\n', max_size=6)


@FAST
@given(
    value=st.recursive(
        st.none() | _tricky | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_tricky, c, max_size=3),
        max_leaves=60,
    ),
    wrap=st.integers(0, 70),
)
def test_depth_guard_equals_the_real_nesting_depth(value: Any, wrap: int) -> None:
    from redpill_integrations.verify.encoding import MAX_JSON_DEPTH, loads_strict

    for i in range(wrap):
        value = [value] if i % 2 else {'k\\"[': value}
    body = json.dumps(value).encode()
    if _depth(value) > MAX_JSON_DEPTH:
        try:
            loads_strict(body, what="x")
        except EvidenceError as exc:
            assert "nests deeper" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("too deep, yet parsed")
    else:
        assert loads_strict(body, what="x") == value
