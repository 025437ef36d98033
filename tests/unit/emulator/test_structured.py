"""The emulator model's structured answers: schema-driven values, tool choice, JSON, fragments."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict

from redpill_integrations.emulator.model import Reply, ReplyScript, render_sse_events
from redpill_integrations.emulator.structured import (
    argument_fragments,
    generate,
    structured_reply,
)


class Address(BaseModel):
    city: str
    postcode: int = Field(ge=10000, le=99999)


class Person(BaseModel):
    """Nested objects, arrays, enums, bounds, optional and nullable fields, $ref + $defs."""

    name: str
    age: int = Field(gt=17, lt=130)
    tags: list[str] = Field(min_length=2)
    address: Address
    previous: list[Address]
    role: Literal["admin", "user", "guest"]
    nickname: str | None = None
    score: float | None
    active: bool


class Tree(BaseModel):
    label: str
    children: list[Tree]


class Counted(TypedDict):
    word: str
    count: int


def _tool(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": params}}


ADD = _tool(
    "add",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
WEATHER = _tool(
    "get_weather",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _args(reply: Reply | None) -> dict[str, Any]:
    assert reply is not None and reply.tool_arguments is not None
    out = json.loads(reply.tool_arguments)
    assert isinstance(out, dict)
    return out


# --- generate ------------------------------------------------------------------------------------


def test_generated_value_is_valid_for_a_nested_pydantic_model_with_defs() -> None:
    schema = Person.model_json_schema()
    assert "$defs" in schema  # Address is referenced, as pydantic emits it
    value = generate(schema, "Register 'Ada Lovelace', aged 36, as user in London.")
    person = Person.model_validate(value)
    assert person.name == "Ada Lovelace"  # the quoted string, for the first string field
    assert person.age == 36  # the prompt's number
    assert person.role == "user"  # the enum member the prompt mentions
    # then string fields take the prompt's proper nouns in order, then typed defaults
    assert person.tags == ["London", "emulated tags"]  # minItems 2
    assert person.address.city == "emulated city"
    assert person.address.postcode == 10000  # typed default clamped into bounds
    assert person.nickname is None and "nickname" not in value  # optional and not named
    assert person.active is False


def test_optional_field_appears_when_the_prompt_names_it() -> None:
    value = generate(Person.model_json_schema(), "nickname: ada, active = true")
    assert value["nickname"] == "ada"
    assert value["active"] is True
    Person.model_validate(value)


def test_typed_defaults_without_prompt_values() -> None:
    value = generate(Person.model_json_schema(), "")
    person = Person.model_validate(value)
    assert person.name == "emulated name"
    assert person.age == 18  # exclusiveMinimum 17
    assert person.role == "admin"  # the first enum member
    assert value["score"] is None  # nullable and not named: null, as models answer


def test_recursive_schema_terminates_and_validates() -> None:
    value = generate(Tree.model_json_schema(), "")
    Tree.model_validate(value)


def test_typeddict_and_formats() -> None:
    value = generate(TypeAdapter(Counted).json_schema(), "Count 'apple' 7 times")
    assert value == {"word": "apple", "count": 7}
    fmt = generate(
        {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "mail": {"type": "string", "format": "email"},
                "code": {"type": "string", "minLength": 20, "maxLength": 25},
                "kind": {"type": ["string", "null"], "enum": ["x", "y"]},
                "named": {"type": ["integer", "null"]},
                "fixed": {"const": 42},
            },
            "required": ["when", "mail", "code", "kind", "fixed", "named"],
        },
        "named = 5",
    )
    assert fmt["when"] == "2025-01-01T00:00:00Z"
    assert fmt["mail"] == "user@example.com"
    assert 20 <= len(fmt["code"]) <= 25
    assert fmt["kind"] == "x"  # the enum decides: null is not one of its members
    assert fmt["named"] == 5
    assert fmt["fixed"] == 42


@given(st.text(max_size=80))
def test_any_prompt_yields_a_valid_person(prompt: str) -> None:
    Person.model_validate(generate(Person.model_json_schema(), prompt))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_keyword = st.sampled_from(
    ["type", "properties", "required", "items", "enum", "anyOf", "allOf", "$ref", "minItems"]
)
_schemas = st.recursive(
    st.dictionaries(_keyword, _json, max_size=4),
    lambda inner: st.dictionaries(_keyword | st.text(max_size=4), inner | _json, max_size=4),
    max_leaves=12,
)


@given(_schemas, st.text(max_size=30))
def test_arbitrary_schemas_never_crash_the_model(schema: dict[str, Any], prompt: str) -> None:
    json.dumps(generate(schema, prompt))  # a JSON value, whatever the schema


_requests = st.fixed_dictionaries(
    {},
    optional={
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "tool"])},
                optional={"content": _json, "tool_calls": _json, "tool_call_id": _json},
            )
        )
        | _json,
        "tools": st.lists(
            st.fixed_dictionaries(
                {"type": st.just("function")},
                optional={
                    "function": st.fixed_dictionaries(
                        {"name": st.text(max_size=5)}, optional={"parameters": _schemas | _json}
                    )
                },
            )
        )
        | _json,
        "tool_choice": _json | st.sampled_from(["none", "auto", "required"]),
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["json_object", "json_schema", "text"])},
            optional={"json_schema": _json | st.fixed_dictionaries({"schema": _schemas})},
        )
        | _json,
    },
)


@given(_requests)
def test_any_request_gets_a_reply_or_none(request: dict[str, Any]) -> None:
    reply = structured_reply(request)
    assert reply is None or isinstance(reply, Reply)
    if reply is not None and reply.tool_arguments is not None:
        assert isinstance(json.loads(reply.tool_arguments), dict)


def test_hostile_schemas_stay_bounded() -> None:
    loop = {"$defs": {"A": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/A"}}}}
    assert json.dumps(generate({**loop, "$ref": "#/$defs/A"})).count("[") <= 20
    huge = {"type": "array", "minItems": 10**9, "items": {"type": "string", "minLength": 10**9}}
    value = generate(huge)
    assert len(value) == 64 and len(value[0]) == 10_000


# --- tool calls ----------------------------------------------------------------------------------


def test_tool_call_takes_numbers_from_the_prompt_in_order() -> None:
    reply = structured_reply({"messages": _user("What is 1 + 2"), "tools": [ADD]})
    assert reply is not None and reply.tool_name == "add"
    assert _args(reply) == {"a": 1, "b": 2}


def test_the_tool_the_prompt_names_wins_over_the_first() -> None:
    reply = structured_reply(
        {"messages": _user("Call get_weather for San Francisco, CA"), "tools": [ADD, WEATHER]}
    )
    assert reply is not None and reply.tool_name == "get_weather"
    assert _args(reply) == {"location": "San Francisco, CA"}


def test_the_longest_named_tool_wins() -> None:
    short = _tool("magic", {"type": "object", "properties": {}})
    long = _tool("magic_no_args", {"type": "object", "properties": {}})
    reply = structured_reply(
        {"messages": _user("value of magic_no_args()?"), "tools": [short, long]}
    )
    assert reply is not None and reply.tool_name == "magic_no_args"
    assert _args(reply) == {}


def test_tool_choice_forces_a_tool_and_none_disables_tools() -> None:
    forced = {"type": "function", "function": {"name": "get_weather"}}
    reply = structured_reply(
        {"messages": _user("Hello!"), "tools": [ADD, WEATHER], "tool_choice": forced}
    )
    assert reply is not None and reply.tool_name == "get_weather"
    assert _args(reply) == {"location": "emulated location"}
    first = structured_reply(
        {"messages": _user("Hello!"), "tools": [ADD, WEATHER], "tool_choice": "required"}
    )
    assert first is not None and first.tool_name == "add"
    assert (
        structured_reply({"messages": _user("Hi"), "tools": [ADD], "tool_choice": "none"}) is None
    )


def test_unicode_arguments_stay_unescaped() -> None:
    reply = structured_reply(
        {
            "messages": _user("Create a customer named '你好啊集团' (Hello Group)"),
            "tools": [WEATHER],
        }
    )
    assert reply is not None and reply.tool_arguments == '{"location":"你好啊集团"}'


def test_after_tool_results_the_answer_is_text_that_uses_them() -> None:
    messages = [
        *_user("What is the weather in Paris?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "It's sunny."},
    ]
    reply = structured_reply({"messages": messages, "tools": [WEATHER]})
    assert reply == Reply.text("According to the tools, get_weather returned: It's sunny.")
    forced = structured_reply({"messages": messages, "tools": [WEATHER], "tool_choice": "required"})
    assert forced is not None and forced.tool_name == "get_weather"


# --- response_format ---------------------------------------------------------------------------


def test_json_schema_response_format_is_valid_against_the_schema() -> None:
    request = {
        "messages": _user("Tell me a joke about cats."),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Person", "schema": Person.model_json_schema()},
        },
    }
    reply = structured_reply(request)
    assert reply is not None and reply.content is not None and reply.tool_name is None
    Person.model_validate_json(reply.content)


def test_json_object_uses_the_keys_the_prompt_quotes() -> None:
    prompt = "Return JSON with 'setup' and 'punchline' keys."
    reply = structured_reply(
        {"messages": _user(prompt), "response_format": {"type": "json_object"}}
    )
    assert reply is not None and reply.content is not None
    assert json.loads(reply.content) == {
        "setup": "emulated setup",
        "punchline": "emulated punchline",
    }
    plain = structured_reply({"messages": _user("hi"), "response_format": {"type": "json_object"}})
    assert plain is not None and plain.content is not None
    assert json.loads(plain.content) == {"answer": "Emulated reply: hi"}


def test_plain_requests_get_no_structure() -> None:
    assert structured_reply({"messages": _user("Hello")}) is None
    assert structured_reply({"messages": "not a list", "tools": "nope"}) is None


# --- the script and the stream -------------------------------------------------------------------


def test_scripted_replies_still_win() -> None:
    script = ReplyScript()
    script.add(None, [Reply.text("scripted")])
    request = {"messages": _user("What is 1 + 2"), "tools": [ADD]}
    assert script.next("m", request["messages"], request=request) == Reply.text("scripted")
    assert script.next("m", request["messages"], request=request).tool_name == "add"


@pytest.mark.parametrize("arguments", ['{"location":"San Francisco, CA","n":3}', "{}", ""])
def test_argument_fragments_rejoin_exactly(arguments: str) -> None:
    pieces = argument_fragments(arguments)
    assert "".join(pieces) == arguments
    if len(arguments) > 16:
        assert len(pieces) > 2 and all(len(p) <= 24 for p in pieces)


def test_streamed_tool_call_comes_in_fragments() -> None:
    reply = Reply.tool_call("get_weather", {"location": "San Francisco, CA"})
    events = render_sse_events("chatcmpl-abc", "m", reply, [], include_usage=False)
    deltas = [json.loads(e[6:]) for e in events[:-1]]
    args = [
        d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for d in deltas
        if "tool_calls" in d["choices"][0]["delta"]
    ]
    assert args[0] == ""  # the opening delta names the tool, arguments follow
    assert len(args) > 3
    assert "".join(args) == '{"location":"San Francisco, CA"}'
    assert deltas[-1]["choices"][0]["finish_reason"] == "tool_calls"
