"""ACI additions to VerificationPolicy and TrustAnchors: defaults, validation, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redpill_integrations.errors import ConfigurationError
from redpill_integrations.policy import (
    PRODUCTION_ACI_APP_IDS,
    PRODUCTION_KMS_ROOT_PUBKEYS,
    OsImage,
    TrustAnchors,
    VerificationPolicy,
)

LIVE_IMAGE = "bd369a8c2f9edb2b52dad48ac8e0b32dde5f1337c423a506b48d07403a7d8033"


def test_policy_defaults() -> None:
    p = VerificationPolicy()
    assert (p.require_verified_upstream, p.send_aci_constraint, p.check_session) == (
        True,
        True,
        False,
    )
    assert (p.accepted_providers, p.required_session_claims, p.deep_audit) == (
        None,
        ("tee_attested",),
        False,
    )
    assert (p.served_at_skew, p.max_keyset_lifetime) == (300.0, 90 * 86400.0)


def test_policy_rejects_an_empty_provider_list_and_negative_windows() -> None:
    with pytest.raises(ConfigurationError, match="accepted_providers is empty"):
        VerificationPolicy(accepted_providers=())
    with pytest.raises(ConfigurationError):
        VerificationPolicy(accepted_providers="chutes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        VerificationPolicy(served_at_skew=-1)


def test_policy_round_trips_and_fingerprints_the_aci_fields() -> None:
    p = VerificationPolicy(accepted_providers=("near-ai", "chutes"), check_session=True)
    assert p.accepted_providers == ("chutes", "near-ai")
    again = VerificationPolicy.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p and again.fingerprint() == p.fingerprint()
    assert VerificationPolicy().fingerprint() != p.fingerprint()


def test_production_trust_carries_the_aci_anchors_and_the_registry() -> None:
    t = TrustAnchors.production()
    assert t.kms_root_pubkeys == PRODUCTION_KMS_ROOT_PUBKEYS
    assert t.aci_app_ids == PRODUCTION_ACI_APP_IDS
    live = t.os_images[LIVE_IMAGE]
    assert live.name == "dstack-0.5.9" and live.has_measurements
    assert live.mrtd is not None and live.mrtd.startswith("f06dfda6")
    hash_only = [i for i in t.os_images.values() if not i.has_measurements]
    assert len(hash_only) == 3 and len(t.os_images) == 7
    # the legacy images (data/os_images_legacy.json) are all fully measured
    legacy = t.os_images["9b69bb1698bacbb6985409a2c272bcb892e09cdcea63d5399c6768b67d3ff677"]
    assert legacy.name == "dstack-nvidia-0.5.5" and legacy.fully_measured
    unnamed = t.os_images["6809f73ca56b2dfba9918bdb9709608f30284af4fbb50e707e3270a0436f1657"]
    assert unnamed.name == "unnamed dstack image 6809f73ca56b" and unnamed.fully_measured


def test_trust_file_reads_and_writes_the_aci_keys(tmp_path: Path) -> None:
    data = {
        "kind": "redpill-emulator",
        "pccs_url": "http://127.0.0.1:1/pccs",
        "nras_url": "http://127.0.0.1:1/nras",
        "nras_jwks_url": "http://127.0.0.1:1/jwks",
        "kms_root_pubkeys": ["02" + "11" * 32],
        "aci_app_ids": ["0x" + "AB" * 20],
        "os_images": {"22" * 32: {"name": "emulated", "mrtd": "33" * 48}},
    }
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(data))
    t = TrustAnchors.from_file(path)
    assert t.kms_root_pubkeys == ("02" + "11" * 32,)
    assert t.aci_app_ids == ("ab" * 20,)
    assert t.os_images == {"22" * 32: OsImage(name="emulated", mrtd="33" * 48)}
    assert TrustAnchors.from_dict(t.to_dict(), source=str(path)) == t


def test_trust_file_without_aci_keys_keeps_production_values() -> None:
    t = TrustAnchors.from_dict(
        {
            "kind": "old",
            "pccs_url": "http://127.0.0.1:1",
            "nras_url": "http://127.0.0.1:1",
            "nras_jwks_url": "http://127.0.0.1:1",
        }
    )
    assert t.kms_root_pubkeys == PRODUCTION_KMS_ROOT_PUBKEYS


@pytest.mark.parametrize(
    "changes",
    [
        {"kms_root_pubkeys": ()},
        {"kms_root_pubkeys": ("02" * 10,)},
        {"aci_app_ids": ("not hex",)},
        {"aci_app_ids": "fdb7a14e5a6675f752e2cb69c9067a98ca402918"},
        {"os_images": {"short": {"name": "x"}}},
        {"os_images": {"22" * 32: {"mrtd": "33" * 48}}},
    ],
)
def test_bad_aci_anchors_are_configuration_errors(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        TrustAnchors(**changes)  # type: ignore[arg-type]
