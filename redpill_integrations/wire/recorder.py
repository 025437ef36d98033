"""Where captured exchanges wait for their verifier: bounded, thread- and task-safe.

Exchanges are filed **only under a tag the caller chose**, never under a value the server chose
(a response id can be re-used by a hostile gateway, ``docs/capture.md``):

* an adapter puts ``CAPTURE_HEADER: <tag>`` on its request (tag from :meth:`new_tag`), or
* a caller that cannot add headers (``RedpillCallbackHandler`` with a plain ``ChatOpenAI``) binds a
  tag to the current context with :meth:`bind_tag` before the request is sent; the capturing
  transport of *this* recorder files what it captures in that context under the tag.

Every attempt of a request (the OpenAI SDK retries through the same transport) is filed under the
tag and :meth:`take` returns the **last** attempt (highest sequence number), the one whose response
the SDK handed back. Every attempt is filed, a capture problem included, so an attempt can never
hide behind an earlier one. :meth:`take` removes the exchange and closes the tag: anything filed
under it later is dropped. Exchanges without a tag are not kept at all.

What is kept is bounded twice: at most ``max_exchanges`` entries and ``max_bytes`` of bodies (the
oldest go first, so a caller that never takes its exchanges cannot grow memory without bound; a
taker whose exchange was evicted gets ``None``, which verifies as unverifiable).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from redpill_integrations.errors import ConfigurationError

if TYPE_CHECKING:
    from redpill_integrations.wire.capture import CapturedExchange

__all__ = ["ExchangeRecorder"]

_BOUND: ContextVar[tuple[ExchangeRecorder, str] | None] = ContextVar(
    "redpill_capture_tag", default=None
)
_CLOSED_TAGS = 4096  # how many taken tags are remembered (late filings under them are dropped)


def _size(exchange: CapturedExchange) -> int:
    return len(exchange.request_body) + len(exchange.response_body)


class ExchangeRecorder:
    """Bounded, thread- and task-safe store of captured exchanges, keyed by caller-chosen tags."""

    def __init__(self, *, max_exchanges: int = 1024, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_exchanges <= 0 or max_bytes <= 0:
            raise ConfigurationError("max_exchanges and max_bytes must be positive")
        self._max = max_exchanges
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._by_tag: OrderedDict[str, CapturedExchange] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._bytes = 0
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_tag)

    @property
    def retained_bytes(self) -> int:
        """Request plus response bytes of the exchanges currently kept."""
        with self._lock:
            return self._bytes

    def new_tag(self) -> str:
        return secrets.token_hex(12)

    def bind_tag(self, tag: str) -> Token[tuple[ExchangeRecorder, str] | None]:
        """File exchanges this recorder's transports capture in the current context (requests
        without ``CAPTURE_HEADER``) under ``tag``. Returns the token for ``ContextVar.reset``."""
        return _BOUND.set((self, tag))

    def bound_tag(self) -> str | None:
        """The tag bound to this recorder in the current context, if any."""
        bound = _BOUND.get()
        return bound[1] if bound is not None and bound[0] is self else None

    def next_sequence(self) -> int:
        """A strictly increasing attempt number, taken when a request is sent."""
        with self._lock:
            return next(self._seq)

    def file(self, exchange: CapturedExchange) -> None:
        tag = exchange.tag
        if tag is None:
            return  # nobody can ask for it
        with self._lock:
            if tag in self._closed:
                return
            current = self._by_tag.get(tag)
            if current is not None and current.sequence > exchange.sequence:
                return
            if current is not None:
                self._bytes -= _size(current)
            self._by_tag[tag] = exchange
            self._by_tag.move_to_end(tag)
            self._bytes += _size(exchange)
            while len(self._by_tag) > 1 and (
                len(self._by_tag) > self._max or self._bytes > self._max_bytes
            ):
                _, old = self._by_tag.popitem(last=False)
                self._bytes -= _size(old)

    def take(self, tag: str) -> CapturedExchange | None:
        """Remove and return the exchange of the last attempt filed under ``tag``; the tag is
        closed (later filings under it are dropped)."""
        with self._lock:
            exchange = self._by_tag.pop(tag, None)
            if exchange is not None:
                self._bytes -= _size(exchange)
            self._closed[tag] = None
            self._closed.move_to_end(tag)
            while len(self._closed) > _CLOSED_TAGS:
                self._closed.popitem(last=False)
            return exchange
