"""langchain-tests' ``ChatModelIntegrationTests``, strict mode, on the emulator and the real API.

``TestChatRedpillEmulator`` runs in every ``./dev test``: one emulator per protocol for the module,
every call in strict mode, so each standard test also proves the emulator's answers (tool calls,
structured output, JSON mode, streams) verify end to end. ``TestChatRedpillLive`` is the same class
against the real Redpill API, skipped unless ``REDPILL_API_KEY`` is set (marker ``live``);
``REDPILL_LIVE_MODEL`` and ``REDPILL_LIVE_OVERRIDE_MODEL`` pick the ``phala/…`` models.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from redpill_integrations.emulator import Emulator
from redpill_integrations.langchain import ChatRedpill

#: the emulator protocols the standard suite runs against (ACI is the emulator's default)
PROTOCOLS = ["legacy", "aci"]


class _RedpillStandard(ChatModelIntegrationTests):
    """What Redpill's Chat Completions API offers, stated once for both targets."""

    @property
    def chat_model_class(self) -> type[ChatRedpill]:
        return ChatRedpill

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    # What Redpill's confidential models do not take (each skip in the suite is one of these):
    # its phala/… models are text-only LLMs: no image, PDF or audio inputs, no images or PDFs in
    # tool messages, and Chat Completions has no Anthropic-format content blocks.
    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    # test_stream_time is a VCR benchmark (recorded cassettes, pytest-benchmark), not a feature
    @property
    def enable_vcr_tests(self) -> bool:
        return False


@pytest.fixture(scope="module", params=PROTOCOLS)
def standard_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    with Emulator(seed=f"standard-{request.param}", protocol=request.param) as emu:
        yield emu


class TestChatRedpillEmulator(_RedpillStandard):
    _emulator: Emulator

    @pytest.fixture(autouse=True)
    def _use_emulator(self, standard_emulator: Emulator) -> None:
        standard_emulator.reset()
        self._emulator = standard_emulator

    @property
    def chat_model_params(self) -> dict[str, Any]:
        emu = self._emulator
        return {
            "model": "phala/deepseek-chat-v3-0324",
            "base_url": emu.base_url,
            "api_key": emu.api_key,
            "trust": emu.trust,
            "verification": "strict",
        }

    @property
    def model_override_value(self) -> str | None:
        return "phala/qwen-2.5-7b-instruct"


class TestChatRedpillEmulatorFunctionCalling(TestChatRedpillEmulator):
    """The structured-output tests again with ``method="function_calling"`` (the class above uses
    langchain-openai's default, ``json_schema``; ``test_json_mode`` covers ``json_mode``)."""

    #: the tests kept (the others are deselected by this folder's conftest)
    standard_tests_only = "test_structured_output"

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "function_calling"}


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("REDPILL_API_KEY"), reason="REDPILL_API_KEY not set")
class TestChatRedpillLive(_RedpillStandard):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": os.environ.get("REDPILL_LIVE_MODEL", "phala/deepseek-chat-v3-0324"),
            "verification": "strict",
        }

    @property
    def model_override_value(self) -> str | None:
        return os.environ.get("REDPILL_LIVE_OVERRIDE_MODEL", "phala/qwen-2.5-7b-instruct")
