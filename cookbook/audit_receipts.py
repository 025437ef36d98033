"""Audit a receipt store: re-verify every stored receipt offline and report any disagreement.

Usage: python cookbook/audit_receipts.py [STORE]   (default: $REDPILL_RECEIPTS or
~/.redpill/receipts.sqlite3). Receipts of emulator calls need REDPILL_TRUST_FILE: trust anchors
are never taken from the receipts themselves.
"""

import sys
from collections import Counter

from redpill_integrations import ReceiptStore, TrustAnchors
from redpill_integrations.receipts import reverify


def audit(store: ReceiptStore, trust: TrustAnchors) -> bool:
    tally: Counter[str] = Counter()
    disagreements = []
    for receipt in store.iter_all():
        again = reverify(receipt, trust=trust)  # offline, at the original verification time
        tally[again.status.value] += 1
        if (again.status, again.reasons) != (receipt.result.status, receipt.result.reasons):
            disagreements.append((receipt.receipt_id, receipt.result.status, again.status))
    print(f"{sum(tally.values())} receipts re-verified offline: {dict(tally)}")
    for receipt_id, before, after in disagreements:
        print(f"  DISAGREES {receipt_id}: stored {before.value}, now {after.value}")
    return not disagreements


def main(argv: list[str]) -> bool:
    store = ReceiptStore(argv[0]) if argv else ReceiptStore.default()
    return audit(store, TrustAnchors.from_env())


if __name__ == "__main__":
    raise SystemExit(0 if main(sys.argv[1:]) else 1)
