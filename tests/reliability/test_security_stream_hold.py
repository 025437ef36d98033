"""Review I2: strict streaming delivers chunks before the verdict; ``hold_stream=True`` does not.

By default a stream's chunks reach the consumer as they arrive and the verdict comes last, so in
strict mode a consumer has read (and perhaps acted on) content that later fails. With
``hold_stream=True`` (both adapters) no chunk is released before the verdict was enforced: a
``verified`` stream then delivers everything; a failed one delivers nothing and the
``VerificationFailed`` carries all the content.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from redpill_integrations import VerificationFailed
from redpill_integrations.emulator import Emulator, Faults

from .conftest import build, server_content

PROMPT = "stream me a long answer please, with several chunks"


def _rig(emu: Emulator, tmp_path: Path, kind: str, hold: bool) -> Any:
    return build(
        kind,
        base_url=emu.base_url,
        trust=emu.trust,
        store_path=tmp_path / f"{kind}.sqlite3",
        hold_stream=hold,
    )


def _iterate(rig: Any, order: list[str]) -> list[Any]:
    """Consume the stream; every chunk received is logged in ``order`` (as is the verdict)."""
    if rig.kind == "lc":
        stream: Any = rig.llm.stream(PROMPT)
    else:
        from llama_index.core.base.llms.types import ChatMessage

        stream = rig.llm.stream_chat([ChatMessage(role="user", content=PROMPT)])
    chunks = []
    for chunk in stream:
        order.append("chunk")
        chunks.append(chunk)
    return chunks


def _text(kind: str, chunks: list[Any]) -> str:
    if kind == "lc":
        return "".join(str(c.content) for c in chunks)
    return "".join(c.delta or "" for c in chunks)


def _watch(rig: Any, order: list[str]) -> None:
    verify = rig.verifier.verify

    def logged(exchange: Any) -> Any:
        order.append("verdict")
        return verify(exchange)

    rig.verifier.verify = logged


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_by_default_chunks_arrive_before_the_verdict(
    emu: Emulator, tmp_path: Path, kind: str
) -> None:
    rig = _rig(emu, tmp_path, kind, hold=False)
    order: list[str] = []
    _watch(rig, order)
    _iterate(rig, order)
    assert order.index("verdict") > order.index("chunk")


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_a_held_verified_stream_is_released_after_the_verdict(
    emu: Emulator, tmp_path: Path, kind: str
) -> None:
    rig = _rig(emu, tmp_path, kind, hold=True)
    order: list[str] = []
    _watch(rig, order)
    chunks = _iterate(rig, order)
    assert order[0] == "verdict" and order.count("chunk") == len(chunks) > 2
    (sent,) = rig.chats()
    assert _text(kind, chunks) == server_content(bytes(sent.received))


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_a_held_failed_stream_delivers_nothing_and_carries_everything(
    emu: Emulator, tmp_path: Path, kind: str
) -> None:
    emu.set_faults(Faults(tamper_response="alter"))
    rig = _rig(emu, tmp_path, kind, hold=True)
    order: list[str] = []
    with pytest.raises(VerificationFailed) as caught:
        _iterate(rig, order)
    assert order == []  # not one chunk reached the consumer
    assert [r.value for r in caught.value.result.reasons] == ["RESPONSE_HASH_MISMATCH"]
    (sent,) = rig.chats()
    carried = caught.value.response
    text = carried.content if kind == "lc" else carried.message.content
    assert text == server_content(bytes(sent.received))


@pytest.mark.parametrize("kind", ["lc", "li"])
def test_a_held_async_stream_is_released_after_the_verdict(
    emu: Emulator, tmp_path: Path, kind: str
) -> None:
    rig = _rig(emu, tmp_path, kind, hold=True)
    order: list[str] = []
    averify = rig.verifier.averify

    async def logged(exchange: Any) -> Any:
        order.append("verdict")
        return await averify(exchange)

    rig.verifier.averify = logged

    async def run() -> list[Any]:
        if kind == "lc":
            stream: Any = rig.llm.astream(PROMPT)
        else:
            from llama_index.core.base.llms.types import ChatMessage

            stream = await rig.llm.astream_chat([ChatMessage(role="user", content=PROMPT)])
        out = []
        async for chunk in stream:
            order.append("chunk")
            out.append(chunk)
        return out

    chunks = asyncio.run(run())
    assert order[0] == "verdict" and len(chunks) > 2


def test_held_tokens_reach_langchain_callbacks_only_after_the_verdict(
    emu: Emulator, tmp_path: Path
) -> None:
    """``invoke`` on a streaming model: langchain-openai reports each token to the run's
    callbacks as it arrives; held, they are reported as they are released."""
    from langchain_core.callbacks import BaseCallbackHandler

    order: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            order.append("token")

    for hold in (False, True):
        order.clear()
        rig = build(
            "lc",
            base_url=emu.base_url,
            trust=emu.trust,
            store_path=tmp_path / f"cb{hold}.sqlite3",
            hold_stream=hold,
            streaming=True,
        )
        _watch(rig, order)
        rig.llm.invoke(PROMPT, config={"callbacks": [Tokens()]})
        assert order.count("token") > 2
        assert (order[0] == "verdict") == hold, order
