"""``Redpill``: the LlamaIndex LLM for Redpill's TEE models, each response verified (SPEC §4).

A subclass of ``OpenAILike`` built like llama-index's provider packages
(``llama-index-llms-deepseek``, ``-openrouter``): chat and completion, sync and async, streaming,
tools, agents and structured output all run llama-index's own code. Only these seams change:

* ``_get_client`` / ``_get_aclient`` return OpenAI SDK clients built over the verifier's capturing
  httpx clients and kept alive across calls (llama-index closes a client it does not reuse); the
  async one is kept per event loop, so ``asyncio.run`` twice still works;
* ``_chat`` / ``_achat`` / ``_stream_chat`` / ``_astream_chat`` tag the request, verify the captured
  exchange, attach the verdict and apply the mode. ``complete``, ``chat_with_tools``,
  ``predict_and_call``, agents and ``structured_predict`` all reach the API through them;
* the legacy ``/completions`` endpoint is refused unless ``verification="off"``.

OpenAI's environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ...) is never
used: the key comes from ``api_key`` or ``REDPILL_API_KEY``, the URL from ``api_base``,
``REDPILL_BASE_URL`` or the default, and headers the SDK would take from the environment are
removed.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any, Literal, cast

import httpx
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]
from openai import AsyncOpenAI
from openai import OpenAI as SyncOpenAI
from pydantic import SecretStr, ValidationError

from redpill_integrations._adapter import (
    LiveResponses,
    VerifiedCall,
    VerifiedCalls,
    check_mode,
    openai_client,
    resolve_verifier,
)
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.llama_index._hosts import ResponseHost, StreamHost
from redpill_integrations.llama_index._models import context_window_for
from redpill_integrations.llama_index._streams import aclosing, closing, collecting, register
from redpill_integrations.policy import DEFAULT_BASE_URL, TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.wire import RedpillVerifier

__all__ = ["Redpill"]


class Redpill(OpenAILike):  # type: ignore[misc]
    """A LlamaIndex LLM for Redpill whose every response carries a verified-provenance verdict.

    Args:
        model: a Redpill model id. Strict mode refuses, at the first call, a model the gateway
            lists as not TEE (legacy gateways: one without a ``phala/`` prefix).
        api_key: the Redpill API key (default ``REDPILL_API_KEY``); never shown or serialised.
        api_base: the API base URL (default ``REDPILL_BASE_URL``, else ``https://api.redpill.ai/v1``).
        verification: ``"strict"`` (default) raises ``VerificationFailed`` unless a response is
            ``verified`` (the exception carries the response); ``"annotate"`` returns it with the
            verdict and logs a warning; ``"off"`` is a plain client.
        policy, trust, receipt_store: what a verdict accepts, whom it trusts (default
            ``TrustAnchors.from_env()``: production, or ``REDPILL_TRUST_FILE`` with a warning) and
            where receipts go.
        verifier: a ``RedpillVerifier`` to share (its attestation cache and receipts) instead of
            ``policy``/``trust``/``receipt_store``.
        hold_stream: streams hold every chunk until the verdict: in strict mode they are
            released only once it is ``verified`` (a failure's ``VerificationFailed`` carries
            all content). By default chunks are delivered as they arrive, before the verdict.

    Every ``ChatResponse`` (and so ``CompletionResponse``) has the verdict in
    ``additional_kwargs["redpill_verification"]``; a stream ends with one extra response with an
    empty delta that carries it. Each verdict is also dispatched as a ``RedpillVerificationEvent``.

    Example::

        llm = Redpill(model="phala/deepseek-chat-v3-0324")
        response = llm.chat([ChatMessage(role="user", content="Hello")])
        print(response.additional_kwargs["redpill_verification"]["status"])
    """

    verification: Literal["strict", "annotate", "off"] = Field(
        default="strict",
        description="strict: raise unless verified; annotate: attach and warn; off: plain client.",
    )
    api_key: str | None = Field(
        default=None, repr=False, exclude=True, description="The Redpill API key."
    )
    hold_stream: bool = Field(
        default=False, description="Streams: hold every chunk until the verdict was enforced."
    )

    _verifier: RedpillVerifier | None = PrivateAttr(default=None)
    _live: LiveResponses = PrivateAttr(default_factory=LiveResponses)
    _inner_http: httpx.Client | None = PrivateAttr(default=None)
    _inner_ahttp: httpx.AsyncClient | None = PrivateAttr(default=None)
    _sync_client: SyncOpenAI | None = PrivateAttr(default=None)
    _user_aclient: AsyncOpenAI | None = PrivateAttr(default=None)
    _aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )

    def __init__(
        self,
        *,
        model: str,
        api_key: str | SecretStr | None = None,
        api_base: str | None = None,
        verification: str = "strict",
        policy: VerificationPolicy | None = None,
        trust: TrustAnchors | None = None,
        receipt_store: ReceiptStore | None = None,
        verifier: RedpillVerifier | None = None,
        **kwargs: Any,
    ) -> None:
        mode = check_mode(verification)
        key = _api_key(api_key)
        if not key:
            raise ConfigurationError("no Redpill API key: pass api_key= or set REDPILL_API_KEY")
        if not kwargs.get("reuse_client", True):
            raise ConfigurationError(
                "Redpill keeps its capturing clients alive across calls; reuse_client=False "
                "is not supported"
            )
        if mode != "off" and any(
            kwargs.get(name) is not None for name in ("openai_client", "async_openai_client")
        ):
            raise ConfigurationError(
                "an OpenAI client passed in would bypass verification; pass http_client= / "
                'async_http_client= (they are wrapped and kept), or use verification="off"'
            )
        base = api_base or os.environ.get("REDPILL_BASE_URL") or DEFAULT_BASE_URL
        resolved = resolve_verifier(
            mode=mode,
            base_url=base,
            api_key=key,
            verifier=verifier,
            policy=policy,
            trust=trust,
            receipt_store=receipt_store,
        )
        kwargs.setdefault("context_window", context_window_for(model))
        kwargs.setdefault("is_chat_model", True)
        kwargs.setdefault("is_function_calling_model", True)
        kwargs["api_version"] = ""  # non-None: llama-index would read OPENAI_API_VERSION
        try:
            super().__init__(model=model, api_key=key, api_base=base, verification=mode, **kwargs)
        except ValidationError as exc:  # e.g. temperature=7: ours, like every settings error
            raise ConfigurationError(f"invalid Redpill settings: {exc}") from exc
        self.api_version = None
        self._verifier = resolved
        self._inner_http = kwargs.get("http_client")
        self._inner_ahttp = kwargs.get("async_http_client")
        self._user_aclient = kwargs.get("async_openai_client")
        self._sync_client = kwargs.get("openai_client") or openai_client(
            SyncOpenAI, **self._sdk_kwargs(self._sync_http())
        )

    @classmethod
    def class_name(cls) -> str:
        return "Redpill"

    @property
    def verifier(self) -> RedpillVerifier | None:
        """The verifier behind this LLM (its recorder, caches and receipt store); None when off."""
        return self._verifier

    # -- clients -------------------------------------------------------------------------------

    def _get_client(self) -> SyncOpenAI:
        assert self._sync_client is not None
        return self._sync_client

    def _get_aclient(self) -> AsyncOpenAI:
        if self._user_aclient is not None:  # only accepted with verification="off"
            return self._user_aclient
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = openai_client(AsyncOpenAI, **self._sdk_kwargs(self._async_http()))
            self._aclients[loop] = client
        return client

    def _sync_http(self) -> httpx.Client | None:
        inner = self._inner_http
        if self._verifier is None:
            return inner
        return self._live.watch(self._verifier.http_client(inner=inner))

    def _async_http(self) -> httpx.AsyncClient | None:
        inner = self._inner_ahttp
        if self._verifier is None:
            return inner
        return self._live.awatch(self._verifier.async_http_client(inner=inner))

    def _sdk_kwargs(self, http_client: httpx.Client | httpx.AsyncClient | None) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "base_url": self.api_base,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "default_headers": self.default_headers,
            "http_client": http_client,
        }

    # -- request kwargs ------------------------------------------------------------------------

    def _get_model_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        # Upstream lets additional_kwargs replace per-call kwargs wholesale; merge extra_headers and
        # extra_body so neither the user's values nor ours (capture tag, request fields) is lost.
        call_values = {name: kwargs.pop(name, None) for name in ("extra_headers", "extra_body")}
        all_kwargs = cast(dict[str, Any], super()._get_model_kwargs(**kwargs))
        for name, value in call_values.items():
            merged = {**(all_kwargs.get(name) or {}), **(value or {})}
            if merged:
                all_kwargs[name] = merged
        return all_kwargs

    def _begin(self, kwargs: dict[str, Any]) -> tuple[VerifiedCalls, VerifiedCall]:
        verifier = self._verifier
        assert verifier is not None
        calls = VerifiedCalls(
            verifier=verifier, mode=self.verification, live=self._live, hold=self.hold_stream
        )
        return calls, calls.start(str(kwargs.get("model") or self.model), kwargs)

    async def _abegin(self, kwargs: dict[str, Any]) -> tuple[VerifiedCalls, VerifiedCall]:
        verifier = self._verifier
        assert verifier is not None
        calls = VerifiedCalls(
            verifier=verifier, mode=self.verification, live=self._live, hold=self.hold_stream
        )
        return calls, await calls.astart(str(kwargs.get("model") or self.model), kwargs)

    # -- the four seams every call style goes through ---------------------------------------------

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._verifier is None:
            return cast(ChatResponse, super()._chat(messages, **kwargs))
        calls, call = self._begin(kwargs)
        return calls.call(
            call,
            lambda kw: cast(ChatResponse, super(Redpill, self)._chat(messages, **kw)),
            ResponseHost(self.verification),
        )

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._verifier is None:
            return cast(ChatResponse, await super()._achat(messages, **kwargs))
        calls, call = await self._abegin(kwargs)

        async def send(kw: dict[str, Any]) -> ChatResponse:
            return cast(ChatResponse, await super(Redpill, self)._achat(messages, **kw))

        return await calls.acall(call, send, ResponseHost(self.verification))

    def _stream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> Generator[ChatResponse, None, None]:
        if self._verifier is None:
            return cast(
                Generator[ChatResponse, None, None], super()._stream_chat(messages, **kwargs)
            )
        calls, call = self._begin(kwargs)
        inner = cast(
            Generator[ChatResponse, None, None], super()._stream_chat(messages, **call.kwargs)
        )
        stream = cast(
            Generator[ChatResponse, None, None],
            calls.stream(call, inner, StreamHost(self.verification)),
        )
        register(stream)
        return stream

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> AsyncGenerator[ChatResponse, None]:
        if self._verifier is None:
            return cast(
                AsyncGenerator[ChatResponse, None], await super()._astream_chat(messages, **kwargs)
            )
        calls, call = await self._abegin(kwargs)
        inner = cast(
            AsyncGenerator[ChatResponse, None],
            await super()._astream_chat(messages, **call.kwargs),
        )
        stream = cast(
            AsyncGenerator[ChatResponse, None],
            calls.astream(call, inner, StreamHost(self.verification)),
        )
        register(stream)
        return stream

    # -- public streaming entry points: make the consumer's close reach the verified stream -----

    def stream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> Generator[ChatResponse, None, None]:
        with collecting() as started:
            outer = super().stream_chat(messages, **kwargs)
        return outer if self._verifier is None else closing(outer, started)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> Generator[CompletionResponse, None, None]:
        with collecting() as started:
            outer = super().stream_complete(prompt, formatted=formatted, **kwargs)
        return outer if self._verifier is None else closing(outer, started)

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> AsyncGenerator[ChatResponse, None]:
        with collecting() as started:
            outer = await super().astream_chat(messages, **kwargs)
        return outer if self._verifier is None else aclosing(outer, started)

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> AsyncGenerator[CompletionResponse, None]:
        with collecting() as started:
            outer = await super().astream_complete(prompt, formatted=formatted, **kwargs)
        return outer if self._verifier is None else aclosing(outer, started)

    # -- the legacy completions endpoint carries no verifiable chat id -------------------------

    def _refuse_legacy(self) -> None:
        if self._verifier is not None:
            raise ConfigurationError(
                "Redpill verifies chat completions only; the legacy /completions endpoint "
                '(use_chat_completions=False) needs verification="off"'
            )

    def _complete(self, prompt: str, **kwargs: Any) -> Any:
        self._refuse_legacy()
        return super()._complete(prompt, **kwargs)

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Any:
        self._refuse_legacy()
        return super()._stream_complete(prompt, **kwargs)

    async def _acomplete(self, prompt: str, **kwargs: Any) -> Any:
        self._refuse_legacy()
        return await super()._acomplete(prompt, **kwargs)

    async def _astream_complete(self, prompt: str, **kwargs: Any) -> Any:
        self._refuse_legacy()
        return await super()._astream_complete(prompt, **kwargs)


def _api_key(api_key: str | SecretStr | None) -> str:
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    return api_key or os.environ.get("REDPILL_API_KEY") or ""
