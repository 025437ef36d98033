"""NRAS signing keys must chain through their ``x5c`` to a pinned NRAS CA certificate.

The real recorded JWKS verifies under the shipped production pin (NVIDIA's "GPU Intermediate 004");
every way of bringing one's own key (no chain, a chain of one's own, NVIDIA-looking names, someone
else's chain, certificates outside their validity) ends ``GPU_TOKEN_INVALID`` with the cause.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from redpill_integrations.errors import ConfigurationError
from redpill_integrations.policy import TrustAnchors, production_nras_ca_certs
from redpill_integrations.results import Reason
from redpill_integrations.verify.gpu import verify_nras
from tests.unit.verify._vectors import (
    NEAR_NONCE,
    NEAR_NOW,
    NRAS_ISSUER,
    TEST_NRAS_CA,
    TEST_PINS,
    CertAuthority,
    TokenMinter,
    cached,
    dump,
    nras_answer,
    vector_json,
)

REAL_RESPONSE = "teep_neardirect_nras_response.json"
REAL_JWKS = "teep_neardirect_nras_jwks.json"
PIN_SPKI = "fd32837f954e2c45db073105166dfe6985ae0480bb113fba63b091a75affe896"
PIN_DER_SHA256 = "2df8907cf4d6c277b855d407ec178a649930a8e73f7294e8fce66e6ee27c5175"


def verify(
    response: bytes,
    jwks: bytes,
    pins: tuple[bytes, ...],
    *,
    now: datetime = NEAR_NOW,
    expected: int | None = None,
) -> tuple[Reason | None, str | None]:
    result = verify_nras(
        response,
        jwks,
        nonce=NEAR_NONCE,
        issuer=NRAS_ISSUER,
        now=now,
        ca_certs_der=pins,
        expected_gpus=expected,
    )
    return result.reason, result.detail


def real_jwks_with(edit: Any) -> bytes:
    """The recorded JWKS with ``edit(jwk)`` applied to every key."""
    data = vector_json(REAL_JWKS)
    for jwk in data["keys"]:
        edit(jwk)
    return dump(data)


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def real_public_key(jwk: dict[str, Any]) -> Any:
    leaf = x509.load_der_x509_certificate(base64.b64decode(jwk["x5c"][0]))
    return leaf.public_key()


# --- the shipped production pin --------------------------------------------------------------


def test_the_shipped_pin_is_nvidias_gpu_intermediate_004() -> None:
    (der,) = production_nras_ca_certs()
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(spki).hexdigest() == PIN_SPKI
    assert hashlib.sha256(der).hexdigest() == PIN_DER_SHA256
    assert cert.subject.rfc4514_string() == (
        "C=US,O=NVIDIA Corporation,CN=NVIDIA Attestation Service GPU Intermediate 004"
    )
    assert cert.issuer.rfc4514_string() == (
        "CN=NVIDIA Attestation Service CA 001,O=NVIDIA Corporation,C=US"
    )
    assert cert.not_valid_before_utc == datetime(2025, 12, 8, tzinfo=UTC)
    assert cert.not_valid_after_utc == datetime(2029, 12, 8, tzinfo=UTC)
    assert TrustAnchors.production().nras_ca_spki_sha256 == (PIN_SPKI,)
    # it is what NRAS's own JWKS carries as x5c[1] of every key
    assert {base64.b64decode(k["x5c"][1]) for k in vector_json(REAL_JWKS)["keys"]} == {der}


def test_real_nras_answer_verifies_under_the_production_pin_at_its_own_time() -> None:
    assert verify(
        cached(REAL_RESPONSE), cached(REAL_JWKS), production_nras_ca_certs(), expected=8
    ) == (
        None,
        None,
    )


def test_real_answer_fails_under_another_pin() -> None:
    reason, detail = verify(cached(REAL_RESPONSE), cached(REAL_JWKS), TEST_PINS)
    assert reason is Reason.GPU_TOKEN_INVALID
    assert detail == (
        "NRAS signing key: x5c chain not pinned: no pinned NRAS CA issued its last certificate"
    )


def test_real_leaf_alone_still_chains_because_the_pin_issued_it() -> None:
    jwks = real_jwks_with(lambda jwk: jwk.update(x5c=jwk["x5c"][:1]))
    assert verify(cached(REAL_RESPONSE), jwks, production_nras_ca_certs()) == (None, None)


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        (lambda jwk: jwk.pop("x5c"), "no x5c chain"),
        (lambda jwk: jwk.update(x5c=[]), "no x5c chain"),
        (lambda jwk: jwk.update(x5c="MII"), "no x5c chain"),
        (
            lambda jwk: jwk.update(x5c=[jwk["x5c"][0][:200], *jwk["x5c"][1:]]),
            ("x5c chain broken: certificate 0 does not parse"),
        ),
        (
            lambda jwk: jwk.update(x5c=[jwk["x5c"][1]]),
            ("x5c chain broken: the leaf certificate's key is not the JWK's key"),
        ),
        (
            lambda jwk: jwk.update(x5c=jwk["x5c"][:1] * 2),
            ("x5c chain broken: certificate 1 is not a CA"),
        ),
    ],
    ids=["no-x5c", "empty-x5c", "x5c-not-a-list", "cut-leaf", "leaf-missing", "leaf-as-issuer"],
)
def test_real_keys_with_a_cut_or_mangled_chain(edit: Any, detail: str) -> None:
    jwks = real_jwks_with(edit)
    assert verify(cached(REAL_RESPONSE), jwks, production_nras_ca_certs()) == (
        Reason.GPU_TOKEN_INVALID,
        f"NRAS signing key: {detail}",
    )


def test_real_key_re_signed_by_another_ca_is_not_pinned() -> None:
    """NVIDIA's genuine key, re-certified by a CA that only *names* itself like NVIDIA's."""
    forger = CertAuthority("NVIDIA Attestation Service GPU Intermediate 004")

    def re_sign(jwk: dict[str, Any]) -> None:
        leaf = forger.issue(real_public_key(jwk), "NVIDIA Attestation Service GPU GH100")
        jwk["x5c"] = [der_b64(leaf), forger.b64]

    jwks = real_jwks_with(re_sign)
    assert verify(cached(REAL_RESPONSE), jwks, production_nras_ca_certs()) == (
        Reason.GPU_TOKEN_INVALID,
        "NRAS signing key: x5c chain not pinned: no pinned NRAS CA issued its last certificate",
    )


def test_someone_elses_chain_on_a_forged_key_is_broken() -> None:
    genuine = vector_json(REAL_JWKS)["keys"][0]["x5c"]
    forger = TokenMinter(ca=None)
    forger.x5c = list(genuine)
    assert verify(nras_answer(forger), forger.jwks(), production_nras_ca_certs()) == (
        Reason.GPU_TOKEN_INVALID,
        "NRAS signing key: x5c chain broken: the leaf certificate's key is not the JWK's key",
    )


def test_forger_key_with_a_self_made_chain_is_not_pinned() -> None:
    forger = TokenMinter(ca=CertAuthority("NVIDIA Attestation Service CA 001"))
    assert verify(nras_answer(forger), forger.jwks(), production_nras_ca_certs()) == (
        Reason.GPU_TOKEN_INVALID,
        "NRAS signing key: x5c chain not pinned: no pinned NRAS CA issued its last certificate",
    )


def test_an_expired_leaf_certificate() -> None:
    """The recorded tokens expire long before their leaf does, so the leaf here is minted."""
    ca = CertAuthority()
    minter = TokenMinter(ca=ca, not_after=NEAR_NOW - timedelta(seconds=1))
    reason, detail = verify(nras_answer(minter), minter.jwks(), (ca.der,))
    assert reason is Reason.GPU_TOKEN_INVALID
    assert detail is not None and detail.startswith("NRAS signing key: x5c chain expired at ")


# --- the chain rules on chains we build ------------------------------------------------------


def test_a_key_chaining_to_the_pin_verifies() -> None:
    minter = TokenMinter()
    assert verify(nras_answer(minter), minter.jwks(), TEST_PINS) == (None, None)


def test_a_chain_ending_below_a_pinned_root_verifies() -> None:
    """The pin need not be in x5c: the last certificate may be *issued by* a pinned one."""
    root = CertAuthority("Test NRAS root")
    intermediate = CertAuthority("Test NRAS intermediate", parent=root)
    minter = TokenMinter(ca=intermediate)
    assert verify(nras_answer(minter), minter.jwks(), (root.der,)) == (None, None)
    assert verify(nras_answer(minter), minter.jwks(), (intermediate.der,)) == (None, None)
    other = CertAuthority("Test NRAS root")
    assert verify(nras_answer(minter), minter.jwks(), (other.der,))[0] is Reason.GPU_TOKEN_INVALID


@pytest.mark.parametrize(
    ("where", "start"),
    [
        ("leaf", "x5c chain expired at "),
        ("ca", "x5c chain expired at "),
        ("leaf-future", "x5c chain not yet valid at "),
        ("pinned-root", "x5c chain expired at "),
    ],
)
def test_certificates_outside_their_validity(where: str, start: str) -> None:
    past = {"not_before": NEAR_NOW - timedelta(days=3), "not_after": NEAR_NOW - timedelta(days=1)}
    future = {"not_before": NEAR_NOW + timedelta(days=1), "not_after": NEAR_NOW + timedelta(days=3)}
    root = CertAuthority("root", **(past if where == "pinned-root" else {}))
    ca = CertAuthority("ca", parent=root, **(past if where == "ca" else {}))
    leaf = {"leaf": past, "leaf-future": future}.get(where, {})
    minter = TokenMinter(ca=ca, **leaf)
    reason, detail = verify(nras_answer(minter), minter.jwks(), (root.der,))
    assert reason is Reason.GPU_TOKEN_INVALID
    assert detail is not None and detail.startswith(f"NRAS signing key: {start}")


def test_a_copy_of_the_pinned_key_cannot_extend_the_pins_validity() -> None:
    """x5c ends in a self-made certificate holding the pin's key with wider dates: the pin's own
    dates still apply."""
    past = {"not_before": NEAR_NOW - timedelta(days=3), "not_after": NEAR_NOW - timedelta(days=1)}
    pinned = CertAuthority("Test NRAS CA", **past)
    copy = CertAuthority("Test NRAS CA")  # another issuer, certifying the pinned CA's key
    forged = copy.issue(pinned.key.public_key(), "Test NRAS CA", ca=True)
    minter = TokenMinter(ca=pinned)
    assert minter.x5c is not None
    minter.x5c[1] = der_b64(forged)
    reason, detail = verify(nras_answer(minter), minter.jwks(), (pinned.der,))
    assert reason is Reason.GPU_TOKEN_INVALID
    assert detail is not None and detail.startswith("NRAS signing key: x5c chain expired at ")


def test_the_chain_must_also_be_valid_when_the_token_was_issued() -> None:
    """A key certified only after the token's ``iat`` did not exist to sign it."""
    minter = TokenMinter(not_before=NEAR_NOW - timedelta(minutes=5))
    answer = nras_answer(minter, platform={"iat": int((NEAR_NOW - timedelta(hours=1)).timestamp())})
    reason, detail = verify(answer, minter.jwks(), TEST_PINS)
    assert reason is Reason.GPU_TOKEN_INVALID
    assert detail is not None and detail.startswith("NRAS signing key: x5c chain not yet valid at ")


def test_an_issuer_that_is_not_a_ca_breaks_the_chain() -> None:
    minter = TokenMinter(ca=None)
    not_ca = TEST_NRAS_CA.issue(minter.key.public_key(), "not a CA")
    minter.x5c = [der_b64(TEST_NRAS_CA.issue(minter.key.public_key(), "leaf")), der_b64(not_ca)]
    assert verify(nras_answer(minter), minter.jwks(), TEST_PINS) == (
        Reason.GPU_TOKEN_INVALID,
        "NRAS signing key: x5c chain broken: certificate 1 is not a CA",
    )


def test_valid_until_is_bounded_by_the_chain() -> None:
    minter = TokenMinter(not_after=NEAR_NOW + timedelta(minutes=7))
    result = verify_nras(
        nras_answer(minter),
        minter.jwks(),
        nonce=NEAR_NONCE,
        issuer=NRAS_ISSUER,
        now=NEAR_NOW,
        ca_certs_der=TEST_PINS,
    )
    assert result.reason is None
    assert result.valid_until == NEAR_NOW + timedelta(minutes=7)


# --- TrustAnchors carries the pins -----------------------------------------------------------


def test_trust_anchors_default_to_the_production_pin_and_round_trip() -> None:
    trust = TrustAnchors()
    assert trust.nras_ca_certs_der == production_nras_ca_certs()
    data = trust.to_dict()
    assert data["nras_ca_certs_der_b64"] == [
        base64.b64encode(d).decode() for d in production_nras_ca_certs()
    ]
    assert TrustAnchors.from_dict(data) == trust
    custom = TrustAnchors(kind="test", nras_ca_certs_der=TEST_PINS)
    assert TrustAnchors.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom


def test_a_trust_file_without_pins_gets_nvidias() -> None:
    data = TrustAnchors(kind="test", nras_ca_certs_der=TEST_PINS).to_dict()
    del data["nras_ca_certs_der_b64"]
    assert TrustAnchors.from_dict(data).nras_ca_certs_der == production_nras_ca_certs()


@pytest.mark.parametrize(
    "value", [[], "AAAA", [1], ["not base64!"], [base64.b64encode(b"not a cert").decode()]]
)
def test_bad_pins_in_a_trust_file_are_configuration_errors(value: Any) -> None:
    data = TrustAnchors().to_dict()
    data["nras_ca_certs_der_b64"] = value
    with pytest.raises(ConfigurationError):
        TrustAnchors.from_dict(data)


def test_empty_pins_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="nras_ca_certs_der is empty"):
        TrustAnchors(nras_ca_certs_der=())
