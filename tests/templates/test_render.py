"""Rendering in the sandbox, and the checks of a version's texts and a call's variables."""

from __future__ import annotations

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.templates import (
    Renderer,
    TemplateMessage,
    TemplateVersion,
    Variable,
    check,
    version_from_mapping,
)


def _version(*texts: str, variables: tuple[Variable, ...] = ()) -> TemplateVersion:
    messages = tuple(TemplateMessage("user", t) for t in texts)
    return TemplateVersion("t", 1, variables=variables, messages=messages)


def _fields(err: LlmeshError) -> list[str]:
    return [v.field for v in err.violations]


def test_renders_system_then_messages_with_defaults_filled() -> None:
    version = version_from_mapping(
        {
            "name": "support",
            "variables": {"product": None, "tone": {"default": "friendly"}},
            "system": "You help with {{ product }}, {{ tone }}.",
            "messages": [
                {"role": "user", "content": "Example about {{ product }}"},
                {"role": "assistant", "content": "An answer."},
                {"role": "user", "content": "{% for q in ['a', 'b'] %}{{ q }}{% endfor %}"},
            ],
            "parameters": {"temperature": 0.2, "max_tokens": 50},
        }
    )
    check(version)
    rendered = Renderer().render(version, {"product": "the router"})
    assert rendered.messages == (
        ("system", "You help with the router, friendly."),
        ("user", "Example about the router"),
        ("assistant", "An answer."),
        ("user", "ab"),
    )
    assert rendered.parameters.temperature == 0.2
    assert rendered.parameters.max_tokens == 50
    overridden = Renderer().render(version, {"product": "x", "tone": "terse"})
    assert overridden.messages[0] == ("system", "You help with x, terse.")


def test_missing_and_extra_variables_are_named() -> None:
    version = _version("{{ a }} {{ b }}", variables=(Variable("a"), Variable("b")))
    with pytest.raises(LlmeshError) as caught:
        Renderer().render(version, {"a": 1, "c": 2})
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert _fields(caught.value) == ["template_variables.c", "template_variables.b"]
    assert "not a variable of template t@1" in caught.value.message
    assert "required by template t@1" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__init__.__globals__ }}",
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 100000 }}",
    ],
)
def test_the_sandbox_refuses_escapes_and_huge_values(text: str) -> None:
    version = _version(text, variables=(Variable("x"),))
    with pytest.raises(LlmeshError) as caught:
        Renderer().render(version, {"x": "value"})
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert _fields(caught.value) == ["messages[0].content"]


def test_a_value_is_not_html_escaped() -> None:
    version = _version("{{ x }}", variables=(Variable("x"),))
    assert Renderer().render(version, {"x": "<b>&</b>"}).messages == (("user", "<b>&</b>"),)


def test_check_refuses_bad_syntax_and_undeclared_names() -> None:
    with pytest.raises(LlmeshError) as caught:
        check(_version("{{ a }", "{{ b }} {{ a }}", variables=(Variable("a"),)))
    assert _fields(caught.value) == ["messages[0].content", "messages[1].content"]
    assert "uses 'b'" in caught.value.message
    check(_version("{% set y = a %}{{ y }}", variables=(Variable("a"),)))  # locals are fine


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"name": "Bad Name", "messages": [{"role": "user", "content": "x"}]}, "name"),
        ({"name": "t"}, "messages"),
        ({"name": "t", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"name": "t", "system": "x", "parameters": {"temperature": 3}}, "parameters.temperature"),
        ({"name": "t", "system": "x", "parameters": {"bogus": 1}}, "parameters.bogus"),
        ({"name": "t", "system": "x", "variables": {"a": {"required": False}}}, "variables.a"),
        ({"name": "t", "system": "x", "other": 1}, "other"),
    ],
)
def test_the_file_form_is_validated(raw: dict[str, object], field: str) -> None:
    with pytest.raises(LlmeshError) as caught:
        version_from_mapping(raw)
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert field in _fields(caught.value)
