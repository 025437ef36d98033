"""Settings that reach the wire: REDPILL_TRUST_FILE, users' own httpx clients (kept, and still
captured), and strict mode through an agent."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from redpill_integrations.emulator import Emulator, Faults, Reply
from redpill_integrations.errors import VerificationFailed
from redpill_integrations.llama_index import Redpill

from .conftest import MODEL, make_llm, verdict

MSGS = [ChatMessage(role="user", content="hello")]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


def test_trust_file_from_env_is_honoured_with_a_warning(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REDPILL_TRUST_FILE", str(emu.write_trust_file(tmp_path / "trust.json")))
    monkeypatch.setenv("REDPILL_API_KEY", emu.api_key)
    monkeypatch.setenv("REDPILL_BASE_URL", emu.base_url)
    with caplog.at_level(logging.WARNING, logger="redpill_integrations"):
        llm = Redpill(model=MODEL)
    assert "NON-PRODUCTION" in caplog.text
    assert llm.verifier is not None and llm.verifier.trust.kind == emu.trust.kind
    assert verdict(llm.chat(MSGS))["status"] == "verified"


def test_default_trust_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDPILL_TRUST_FILE", raising=False)
    llm = Redpill(model=MODEL, api_key="sk-test")
    assert llm.verifier is not None and llm.verifier.trust.is_production
    assert llm.api_base == "https://api.redpill.ai/v1"


async def test_users_http_clients_are_kept_and_captured(emu: Emulator) -> None:
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def ahook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    llm = make_llm(
        emu,
        http_client=httpx.Client(event_hooks={"request": [hook]}),
        async_http_client=httpx.AsyncClient(event_hooks={"request": [ahook]}),
    )
    assert verdict(llm.chat(MSGS))["status"] == "verified"
    assert verdict(await llm.achat(MSGS))["status"] == "verified"
    assert seen == ["/v1/chat/completions", "/v1/chat/completions"]


async def test_strict_failure_surfaces_from_an_agent(emu: Emulator) -> None:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    emu.set_faults(Faults(foreign_signer=True), model=MODEL)
    emu.script(replies=[Reply.text("It is 42.")])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=make_llm(emu))
    with pytest.raises(VerificationFailed) as info:
        await agent.run(user_msg="What is 6 x 7?")
    assert [r.value for r in info.value.result.reasons] == ["SIGNER_NOT_ATTESTED"]
    assert info.value.response.message.content == "It is 42."
