"""``RedpillVerifier``: the facade that turns a captured exchange into a VerificationResult."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from redpill_integrations.policy import DEFAULT_BASE_URL, TrustAnchors, VerificationPolicy
from redpill_integrations.results import VerificationResult
from redpill_integrations.wire.capture import CapturedExchange, ExchangeRecorder

if TYPE_CHECKING:
    from redpill_integrations.receipts import ReceiptStore


class RedpillVerifier:
    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | SecretStr | None = None,
        policy: VerificationPolicy | None = None,
        trust: TrustAnchors | None = None,
        receipt_store: ReceiptStore | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        raise NotImplementedError

    @property
    def recorder(self) -> ExchangeRecorder:
        raise NotImplementedError

    def http_client(self, inner: httpx.Client | None = None) -> httpx.Client:
        """A capturing client for ``openai.OpenAI(http_client=...)``."""
        raise NotImplementedError

    def async_http_client(self, inner: httpx.AsyncClient | None = None) -> httpx.AsyncClient:
        raise NotImplementedError

    def verify(self, exchange: CapturedExchange | None) -> VerificationResult:
        """Fetch the signature and (cached) attestation, verify, store one receipt. Never raises
        for evidence or network problems: they become reasons."""
        raise NotImplementedError

    async def averify(self, exchange: CapturedExchange | None) -> VerificationResult:
        raise NotImplementedError
