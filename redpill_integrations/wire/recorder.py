"""Where captured exchanges wait for their verifier: bounded, thread- and task-safe.

* By tag: an adapter puts ``CAPTURE_HEADER: <tag>`` on its request (tag from :meth:`new_tag`);
  every attempt of that request (the OpenAI SDK retries through the same transport) is filed
  under the tag and :meth:`take` returns the **last** attempt (highest sequence number), which is
  the one whose response the SDK handed back.
* By chat id: :meth:`by_chat_id` finds an exchange by its response id, for callers that cannot
  add headers (``RedpillCallbackHandler`` with a plain ``ChatOpenAI``).

Both indexes are LRU-bounded (``max_exchanges``): the oldest entries are dropped first, so a
caller that never takes its exchanges cannot grow memory without bound.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from redpill_integrations.errors import ConfigurationError

if TYPE_CHECKING:
    from redpill_integrations.wire.capture import CapturedExchange

__all__ = ["ExchangeRecorder"]


class ExchangeRecorder:
    """Bounded, thread- and task-safe store of captured exchanges."""

    def __init__(self, *, max_exchanges: int = 1024) -> None:
        if max_exchanges <= 0:
            raise ConfigurationError("max_exchanges must be positive")
        self._max = max_exchanges
        self._lock = threading.Lock()
        self._by_tag: OrderedDict[str, CapturedExchange] = OrderedDict()
        self._by_id: OrderedDict[str, CapturedExchange] = OrderedDict()
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_tag)

    def new_tag(self) -> str:
        return secrets.token_hex(12)

    def next_sequence(self) -> int:
        """A strictly increasing attempt number, taken when a request is sent."""
        with self._lock:
            return next(self._seq)

    def file(self, exchange: CapturedExchange) -> None:
        with self._lock:
            if exchange.tag is not None:
                current = self._by_tag.get(exchange.tag)
                if current is None or current.sequence <= exchange.sequence:
                    self._by_tag[exchange.tag] = exchange
                    self._by_tag.move_to_end(exchange.tag)
                while len(self._by_tag) > self._max:
                    self._by_tag.popitem(last=False)
            if exchange.chat_id is not None:
                self._by_id[exchange.chat_id] = exchange
                self._by_id.move_to_end(exchange.chat_id)
                while len(self._by_id) > self._max:
                    self._by_id.popitem(last=False)

    def take(self, tag: str) -> CapturedExchange | None:
        """Remove and return the exchange of the last attempt filed under ``tag``."""
        with self._lock:
            return self._by_tag.pop(tag, None)

    def by_chat_id(self, chat_id: str) -> CapturedExchange | None:
        """The exchange whose response id is ``chat_id`` (most recent), without removing it."""
        with self._lock:
            return self._by_id.get(chat_id)
