"""Fixtures for the pure-core tests; vectors and helpers are in ``_vectors.py``."""

from __future__ import annotations

import pytest

from redpill_integrations.policy import TrustAnchors, VerificationPolicy

# test_fuzz.py still imports these names from here; drop this re-export once it imports _vectors.
from tests.unit.verify._vectors import (  # noqa: F401
    NEAR_KEY,
    NEAR_NONCE,
    NEAR_NOW,
    NRAS_ISSUER,
    cached,
    dump,
    near_evidence,
    near_report_dict,
)


@pytest.fixture
def policy() -> VerificationPolicy:
    return VerificationPolicy()


@pytest.fixture
def trust() -> TrustAnchors:
    return TrustAnchors.production()
