"""One worker process: ``python -m tests.integration.stores._worker STORE_URL TRUST_FILE N``
makes N concurrent verified calls to the emulator named in TRUST_FILE, each writing its receipt to
STORE_URL, and prints one JSON line: the receipt ids and statuses of its verdicts."""

from __future__ import annotations

import asyncio
import json
import sys

import openai

from redpill_integrations.policy import TrustAnchors
from redpill_integrations.stores import ReceiptStore
from redpill_integrations.wire import CAPTURE_HEADER, RedpillVerifier

#: httpcore's pool scans all its connections per request: spread the calls over several clients
CLIENTS = 10


async def main(url: str, trust_file: str, n: int) -> None:
    trust = TrustAnchors.from_file(trust_file)
    assert trust.base_url is not None
    store = ReceiptStore.open(url)
    async with RedpillVerifier(
        base_url=trust.base_url, api_key="sk-worker", trust=trust, receipt_store=store
    ) as v:
        sdks = [
            openai.AsyncOpenAI(
                base_url=trust.base_url,
                api_key="sk-worker",
                http_client=v.async_http_client(),
                max_retries=0,
            )
            for _ in range(CLIENTS)
        ]

        errors: list[str] = []

        async def one(i: int) -> tuple[str | None, str, list[str]]:
            tag = v.recorder.new_tag()
            try:
                await sdks[i % CLIENTS].chat.completions.create(
                    model="phala/gpt-oss-120b",
                    extra_headers={CAPTURE_HEADER: tag},
                    messages=[{"role": "user", "content": f"worker call {i}"}],
                )
            except Exception as exc:  # reported, and the test fails on it
                errors.append(f"call {i}: {type(exc).__name__}: {exc}")
                return None, "error", []
            result = await v.averify(v.recorder.take(tag))
            return result.receipt_id, result.status.value, [r.value for r in result.reasons]

        results = await asyncio.gather(*(one(i) for i in range(n)))
        for sdk in sdks:
            await sdk.close()
    await store.aclose()
    print(
        json.dumps(
            {
                "ids": [r[0] for r in results],
                "statuses": [r[1] for r in results],
                "reasons": sorted({x for r in results for x in r[2]}),
                "errors": errors[:10],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
