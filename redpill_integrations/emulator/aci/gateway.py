"""The emulated ACI gateway's identity: KMS, CVM, the current keyset epoch and its digest."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from redpill_integrations.emulator.aci.identity import TEST_OS_IMAGE, AciGatewayCvm
from redpill_integrations.emulator.aci.jcs import canonical
from redpill_integrations.emulator.aci.kms import AciKeys, TestKms

__all__ = ["KEYSET_LIFETIME", "AciGateway"]

#: a keyset's ``not_after`` is its creation time plus 30 days (as the live gateway)
KEYSET_LIFETIME = 30 * 86400


class AciGateway:
    """Keys and identity of one emulated gateway. ``rotate()`` starts a new keyset epoch."""

    def __init__(
        self, seed: bytes, *, tls_spki_sha256: bytes, clock: Callable[[], float] = time.time
    ) -> None:
        self._seed = seed
        self._clock = clock
        self._lock = threading.Lock()
        self.kms = TestKms.create(seed)
        self.cvm = AciGatewayCvm.create(
            seed, app_id=self.kms.app_id, kms_root_hex=self.kms.root_pubkey_hex
        )
        self.tls_spki_sha256 = tls_spki_sha256
        self.epoch = 0
        self.keys = AciKeys(seed, 0)
        self.not_after = int(clock()) + KEYSET_LIFETIME
        # the ``keyset_expired`` fault's not_after: fixed, so the expired keyset (and its digest
        # in the report, the response header and the receipt) does not change with the second
        self.expired_not_after = int(clock()) - 60

    def now(self) -> int:
        return int(self._clock())

    def rotate(self) -> None:
        """New receipt and E2EE keys and a new ``not_after``: the keyset digest changes."""
        with self._lock:
            self.epoch += 1
            self.keys = AciKeys(self._seed, self.epoch)
            self.not_after = max(self.not_after + 1, self.now() + KEYSET_LIFETIME)

    def keyset(self, *, expired: bool = False) -> dict[str, Any]:
        receipt, e2ee = self.keys.keyset_entries()
        return {
            "subject": None,
            "not_after": self.expired_not_after if expired else self.not_after,
            "receipt_signing_keys": receipt,
            "e2ee_public_keys": e2ee,
            "tls_public_keys": [{"spki_sha256": self.tls_spki_sha256.hex()}],
        }

    def keyset_digest(self, *, expired: bool = False) -> str:
        return "sha256:" + hashlib.sha256(canonical(self.keyset(expired=expired))).hexdigest()

    def trust_entries(self) -> dict[str, Any]:
        """The trust file's ACI members (``kms_root_pubkeys``, ``aci_app_ids``, ``os_images``)."""
        return {
            "kms_root_pubkeys": [self.kms.root_pubkey_hex],
            "aci_app_ids": [self.kms.app_id.hex()],
            "os_images": {TEST_OS_IMAGE.os_image_hash: TEST_OS_IMAGE.trust_entry()},
        }
