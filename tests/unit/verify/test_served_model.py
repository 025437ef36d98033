"""``served_model``: which model a signed response names, and when two names are the same model."""

from __future__ import annotations

import json

import pytest

from redpill_integrations.verify.served_model import response_models, same_model


@pytest.mark.parametrize(
    ("requested", "served", "same"),
    [
        ("phala/deepseek-chat-v3-0324", "deepseek/deepseek-chat-v3-0324", True),  # Phala's sample
        ("phala/gpt-oss-120b", "openai/GPT-OSS-120B", True),
        ("phala/qwen-2.5-7b-instruct", "qwen/qwen2.5-7b-instruct", True),
        ("phala/deepseek-chat-v3-0324", "phala/qwen-2.5-7b-instruct", False),
        ("phala/gpt-oss-120b", "phala/gpt-oss-20b", False),
        ("phala/gpt-oss-120b", "", False),
        ("phala/gpt-oss-120b", "phala/", False),
    ],
)
def test_same_model(requested: str, served: str, same: bool) -> None:
    assert same_model(requested, served) is same


def test_response_models_of_a_body_and_a_stream() -> None:
    body = json.dumps({"id": "x", "model": "org/m", "choices": []}).encode()
    assert response_models(body, streamed=False) == ("org/m",)
    events = [b"data: not json", b'data: {"id": "x", "model": "org/m"}', b'data: {"model": "o/n"}']
    stream = b"\n\n".join([b": ping", *events, b"data: [DONE]"]) + b"\n\n"
    assert response_models(stream, streamed=True) == ("org/m",)  # the first that names one
    assert response_models(b'{"model": 1}', streamed=False) == ()
    assert response_models(b'{"model": "a", "model": "b"}', streamed=False) == ()  # dup keys
    assert response_models(b"[" * 100_000, streamed=False) == ()
