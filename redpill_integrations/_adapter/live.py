"""The live httpx response of each tagged request, so that an abandoned stream closes at once.

The OpenAI SDK's stream objects sit in reference cycles: a stream its consumer abandons would be
closed by the garbage collector, long after its verdict was needed. :class:`LiveResponses` keeps
the live response of each capture tag (through the public event hooks of the verifier's capturing
clients), so that the adapter core can close it, and the capture is filed as incomplete, now.
"""

from __future__ import annotations

import threading
import weakref

import httpx

from redpill_integrations.wire import CAPTURE_HEADER

__all__ = ["LiveResponses"]


class LiveResponses:
    """The latest httpx response of each capture tag, until its call collects it (its response
    capturing clients come from the verifier with the deep-JSON guard of :mod:`wire.guard`)."""

    def __init__(self) -> None:
        self._tags: weakref.WeakKeyDictionary[httpx.Request, str] = weakref.WeakKeyDictionary()
        self._live: dict[str, httpx.Response] = {}
        self._lock = threading.Lock()

    def watch(self, client: httpx.Client) -> httpx.Client:
        hooks = client.event_hooks
        hooks["request"] = [*hooks.get("request", []), self._on_request]
        hooks["response"] = [*hooks.get("response", []), self._on_response]
        client.event_hooks = hooks
        return client

    def awatch(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        async def on_request(request: httpx.Request) -> None:
            self._on_request(request)

        async def on_response(response: httpx.Response) -> None:
            self._on_response(response)

        hooks = client.event_hooks
        hooks["request"] = [*hooks.get("request", []), on_request]
        hooks["response"] = [*hooks.get("response", []), on_response]
        client.event_hooks = hooks
        return client

    def _on_request(self, request: httpx.Request) -> None:
        tag = request.headers.get(CAPTURE_HEADER)  # hooks run before the transport strips it
        if tag is not None:
            with self._lock:
                self._tags[request] = tag

    def _on_response(self, response: httpx.Response) -> None:
        with self._lock:
            tag = self._tags.pop(response.request, None)
            if tag is not None:
                self._live[tag] = response

    def pop(self, tag: str) -> httpx.Response | None:
        with self._lock:
            return self._live.pop(tag, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)
