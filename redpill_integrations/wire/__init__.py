"""I/O around the pure core: capture, fetchers with retries, caches, the RedpillVerifier facade."""

from redpill_integrations.wire.capture import (
    CAPTURE_HEADER,
    AsyncCapturingTransport,
    CapturedExchange,
    CapturingTransport,
    ExchangeRecorder,
)
from redpill_integrations.wire.verifier import RedpillVerifier

__all__ = [
    "CAPTURE_HEADER",
    "AsyncCapturingTransport",
    "CapturedExchange",
    "CapturingTransport",
    "ExchangeRecorder",
    "RedpillVerifier",
]
