"""``ChatRedpill``: langchain-openai's chat model with a provenance verdict on every generation.

Built like ``ChatDeepSeek``/``ChatXAI``: a ``BaseChatOpenAI`` subclass overriding only the seams.
This module holds Redpill's settings (env, clients around the wire layer's capturing transports,
serialisation, reasoning content); the verifying call drivers live in :mod:`._calls`. Tool
calling, structured output, batching and usage all come from langchain-openai unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, Self

import openai
from langchain_core.language_models import LangSmithParams
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from redpill_integrations._adapter import openai_client, resolve_verifier
from redpill_integrations.errors import ConfigurationError
from redpill_integrations.langchain._calls import VerifyingChatOpenAI
from redpill_integrations.policy import DEFAULT_BASE_URL, TrustAnchors, VerificationPolicy
from redpill_integrations.receipts import ReceiptStore
from redpill_integrations.wire import RedpillVerifier

__all__ = ["ChatRedpill"]

logger = logging.getLogger("redpill_integrations")


def _reasoning(message: Any) -> str | None:
    """``reasoning_content`` (vLLM, DeepSeek) or ``reasoning`` (OpenRouter) of a message/delta."""
    if isinstance(message, dict):
        extra: Any = message
    else:
        extra = getattr(message, "model_extra", None) or {}
    for key in ("reasoning_content", "reasoning"):
        value = extra.get(key)
        if isinstance(value, str):
            return value
    return None


class ChatRedpill(VerifyingChatOpenAI):
    """Redpill chat model whose every generation carries a verification verdict.

    ```python
    from redpill_integrations.langchain import ChatRedpill

    model = ChatRedpill(model="phala/deepseek-chat-v3-0324")  # REDPILL_API_KEY from the env
    msg = model.invoke("Hello")
    msg.response_metadata["redpill_verification"]["status"]  # "verified"
    ```

    ``verification="strict"`` (default) raises ``VerificationFailed`` (carrying the message and
    the verdict) when a verdict is not ``verified``; ``"annotate"`` returns it with the verdict and
    logs a warning; ``"off"`` is a plain client (no capture, no verdict). In a stream exactly one
    chunk, the last (empty content, ``chunk_position="last"``), carries the verdict; chunks are
    delivered as they arrive, before it, unless ``hold_stream=True`` holds them until the verdict
    (strict: released only once ``verified``; a failure carries all content). Strict mode also
    asks an ACI gateway to refuse rather than serve unverified (``aci_verified``); its signed
    refusal raises ``VerificationFailed`` (``UPSTREAM_REFUSED``) carrying the SDK's error.
    """

    model_name: str = Field(alias="model")
    """Redpill model id. Whether its answers come from a TEE is the verdict's to say (under ACI:
    the gateway's receipt); strict mode refuses, at the first call, a model the gateway lists as
    not TEE (legacy gateways: one without a ``phala/`` prefix)."""
    redpill_api_key: SecretStr | None = Field(
        alias="api_key", default_factory=secret_from_env("REDPILL_API_KEY", default=None)
    )
    """Redpill API key; ``REDPILL_API_KEY`` when not given. OpenAI's variables are never read."""
    redpill_api_base: str = Field(
        alias="base_url", default_factory=from_env("REDPILL_BASE_URL", default=DEFAULT_BASE_URL)
    )
    """Redpill base URL; ``REDPILL_BASE_URL``, else ``https://api.redpill.ai/v1``."""

    # The parent's OpenAI settings are read from OPENAI_* variables: neutralised here.
    openai_api_key: SecretStr | None = Field(default=None, exclude=True)
    openai_api_base: str | None = Field(default=None, exclude=True)
    openai_organization: str | None = Field(default=None, exclude=True)
    openai_proxy: str | None = Field(default=None, exclude=True)

    stream_usage: bool | None = True
    """Usage in streams is on by default (Redpill supports ``stream_options.include_usage``)."""
    use_responses_api: bool | None = False
    """Redpill serves the Chat Completions API only."""

    policy: VerificationPolicy | None = None
    """What counts as verified; ``VerificationPolicy()`` when not given."""
    trust: TrustAnchors | None = None
    """Trust anchors; ``TrustAnchors.from_env()`` (production or REDPILL_TRUST_FILE) by default."""
    receipt_store: ReceiptStore | None = None
    # verification ("strict" | "annotate" | "off") and verifier= (redpill_verifier) come from
    # VerifyingChatOpenAI; the verifier is built from the settings above unless one is passed.

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    # -- identity and serialisation ---------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "redpill-chat"

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"redpill_api_key": "REDPILL_API_KEY", "api_key": "REDPILL_API_KEY"}

    @property
    def lc_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.policy is not None:
            attrs["policy"] = self.policy.to_dict()
        if self.trust is not None:
            attrs["trust"] = self.trust.to_dict()
        return attrs

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["redpill_integrations", "langchain"]

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "redpill"
        return params

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_from_dict(cls, value: Any) -> Any:
        return VerificationPolicy.from_dict(value) if isinstance(value, dict) else value

    @field_validator("trust", mode="before")
    @classmethod
    def _trust_from_dict(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        anchors = TrustAnchors.from_dict(value, source="serialized ChatRedpill")
        if not anchors.is_production:
            logger.warning(
                "Using NON-PRODUCTION trust anchors of kind %r from a serialized ChatRedpill: "
                "verdicts prove nothing about real TEE hardware.",
                anchors.kind,
            )
        return anchors

    # -- construction ---------------------------------------------------------------------------

    @model_validator(mode="after")
    def validate_environment(self) -> Self:
        """Build the OpenAI clients around the capturing transports (replaces the parent's)."""
        if self.n is not None and (self.n < 1 or (self.n > 1 and self.streaming)):
            raise ConfigurationError("n must be at least 1, and 1 when streaming")
        if self.use_responses_api:
            raise ConfigurationError("Redpill serves the Chat Completions API only")
        if self.openai_proxy:
            raise ConfigurationError(
                "openai_proxy is not supported: pass http_client=httpx.Client(proxy=…)"
            )
        key = self.redpill_api_key.get_secret_value() if self.redpill_api_key else ""
        if not key:
            raise ConfigurationError("no Redpill API key: pass api_key=… or set REDPILL_API_KEY")
        if self.verification != "off" and any(
            c is not None for c in (self.client, self.async_client, self.root_client)
        ):
            raise ConfigurationError(
                "ChatRedpill builds its own OpenAI clients to capture the exchange; pass "
                "http_client/http_async_client to customise the transport"
            )
        self.redpill_verifier = resolve_verifier(
            mode=self.verification,
            base_url=self.redpill_api_base,
            api_key=self.redpill_api_key,
            verifier=self.redpill_verifier,
            policy=self.policy,
            trust=self.trust,
            receipt_store=self.receipt_store,
        )
        http_client, http_async_client = self.http_client, self.http_async_client
        if self.redpill_verifier is not None:
            http_client = self.redpill_verifier.http_client(inner=self.http_client)
            http_async_client = self.redpill_verifier.async_http_client(
                inner=self.http_async_client
            )
        if self.client is None or self.async_client is None:
            params: dict[str, Any] = {
                "api_key": key,
                "base_url": self.redpill_api_base,
                "default_headers": self.default_headers,
                "default_query": self.default_query,
            }
            if self.request_timeout is not None:
                params["timeout"] = self.request_timeout
            if self.max_retries is not None:
                params["max_retries"] = self.max_retries
            sync_client = openai_client(openai.OpenAI, http_client=http_client, **params)
            async_client = openai_client(
                openai.AsyncOpenAI, http_client=http_async_client, **params
            )
            if self.client is None:
                self.root_client = sync_client
                self.client = sync_client.chat.completions
            if self.async_client is None:
                self.root_async_client = async_client
                self.async_client = async_client.chat.completions
        return self

    @property
    def verifier(self) -> RedpillVerifier | None:
        """The verifier this model uses (``None`` with ``verification="off"``)."""
        return self.redpill_verifier

    def _use_responses_api(self, payload: dict[str, Any]) -> bool:
        return False

    # -- reasoning content (as ChatDeepSeek) ------------------------------------------------------

    def _create_chat_result(
        self,
        response: dict[str, Any] | openai.BaseModel,
        generation_info: dict[str, Any] | None = None,
    ) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        choices = (
            response.get("choices")
            if isinstance(response, dict)
            else getattr(response, "choices", None)
        )
        for generation, choice in zip(result.generations, choices or (), strict=False):
            message = (
                choice.get("message")
                if isinstance(choice, dict)
                else getattr(choice, "message", None)
            )
            if message is not None and (reasoning := _reasoning(message)) is not None:
                generation.message.additional_kwargs["reasoning_content"] = reasoning
        return result

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        generation_chunk = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        choices = chunk.get("choices")
        if generation_chunk and choices and isinstance(generation_chunk.message, AIMessageChunk):
            delta = choices[0].get("delta") or {}
            if (reasoning := _reasoning(delta)) is not None:
                generation_chunk.message.additional_kwargs["reasoning_content"] = reasoning
        return generation_chunk
