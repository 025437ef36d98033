"""langchain-tests' standard integration tests against the real Redpill API.

Skipped unless ``REDPILL_API_KEY`` is set (marker ``live``); ``REDPILL_LIVE_MODEL`` and
``REDPILL_LIVE_OVERRIDE_MODEL`` pick the ``phala/…`` models. Every call runs in strict mode, so each
standard test also proves that the real service's answers verify under production trust anchors.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from redpill_integrations.langchain import ChatRedpill

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("REDPILL_API_KEY"), reason="REDPILL_API_KEY not set"),
]


class TestChatRedpillLive(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatRedpill]:
        return ChatRedpill

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": os.environ.get("REDPILL_LIVE_MODEL", "phala/deepseek-chat-v3-0324"),
            "verification": "strict",
        }

    @property
    def model_override_value(self) -> str | None:
        return os.environ.get("REDPILL_LIVE_OVERRIDE_MODEL", "phala/qwen-2.5-7b-instruct")

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True
