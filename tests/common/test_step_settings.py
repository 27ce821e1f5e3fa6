"""``routes.<name>.steps.fit``: strategies, the larger model, the reply's reserve, and the
errors naming the key."""

from __future__ import annotations

import pytest

from llmesh.services.common.config_fields import ConfigError
from llmesh.services.common.step_settings import FitConfig, FitStrategy, parse_steps


def test_fit_defaults_to_trim_with_the_reserve_from_the_call() -> None:
    steps = parse_steps("r", {"pre": ["fit"]})
    assert steps is not None and steps.pre == ("fit",) and steps.fit == FitConfig()
    assert steps.fit.strategy is FitStrategy.TRIM and steps.fit.reserve_output is None


def test_fit_with_a_larger_model_after_redaction() -> None:
    steps = parse_steps(
        "r",
        {
            "pre": ["redact", "fit"],
            "fit": {
                "strategy": "larger_model",
                "larger_model": "openai/gpt-4.1",
                "reserve_output": 512,
            },
        },
    )
    assert steps is not None
    assert steps.fit == FitConfig(FitStrategy.LARGER_MODEL, "openai/gpt-4.1", 512)


def test_summarize_with_its_model_length_and_kept_turns() -> None:
    fit = {
        "strategy": "summarize",
        "summary_model": "openai/gpt-4o-mini",
        "summary_max_tokens": 300,
        "keep_turns": 3,
    }
    steps = parse_steps("r", {"pre": ["fit"], "fit": fit})
    assert steps is not None
    assert steps.fit == FitConfig(
        FitStrategy.SUMMARIZE,
        None,
        None,
        "openai/gpt-4o-mini",
        summary_max_tokens=300,
        keep_turns=3,
    )


def test_summarize_defaults_its_length_and_kept_turns() -> None:
    fit = {"strategy": "summarize", "summary_model": "cheap"}
    steps = parse_steps("r", {"pre": ["fit"], "fit": fit})
    assert steps is not None
    assert (steps.fit.summary_max_tokens, steps.fit.keep_turns) == (512, 2)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"pre": ["fit"], "fit": {"strategy": "shorten"}}, "fit.strategy"),
        ({"pre": ["fit"], "fit": {"strategy": "summarize"}}, "fit.summary_model"),
        ({"pre": ["fit"], "fit": {"summary_model": "openai/gpt-4o-mini"}}, "fit.summary_model"),
        (
            {"pre": ["fit"], "fit": {"strategy": "summarize", "summary_model": " "}},
            "fit.summary_model",
        ),
        (
            {
                "pre": ["fit"],
                "fit": {"strategy": "summarize", "summary_model": "m", "keep_turns": 0},
            },
            "fit.keep_turns",
        ),
        (
            {
                "pre": ["fit"],
                "fit": {"strategy": "summarize", "summary_model": "m", "summary_max_tokens": True},
            },
            "fit.summary_max_tokens",
        ),
        ({"pre": ["fit"], "fit": {"strategy": "larger_model"}}, "fit.larger_model"),
        ({"pre": ["fit"], "fit": {"larger_model": "gpt-4.1"}}, "fit.larger_model"),
        ({"pre": ["fit"], "fit": {"reserve_output": -1}}, "fit.reserve_output"),
        ({"pre": ["fit"], "fit": {"reserve_output": "1k"}}, "fit.reserve_output"),
        ({"pre": ["fit"], "fit": {"window": 8}}, "fit: unknown keys"),
        ({"pre": ["redact"], "fit": {}}, "fit: settings for a step not in pre"),
        ({"pre": ["fit", "redact"]}, "pre: fit must come last"),
    ],
)
def test_bad_fit_settings_name_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError, match=f"routes.r.steps.{where}"):
        parse_steps("r", raw)


@pytest.mark.parametrize(
    ("section", "raw", "message"),
    [
        ("redact", [], "redact: a mapping with detectors, mode, patterns, words"),
        ("redact", {"mask": 1}, "redact: unknown keys ['mask']"),
        ("redact_output", "x", "redact_output: a mapping with detectors, patterns, words"),
        ("redact_output", {"mode": "mask"}, "redact_output: unknown keys ['mode']"),
        ("screen", 1, "screen: a mapping with action, threshold, route_to, rules, classifier"),
        ("screen", {"level": 1, "b": 2}, "screen: unknown keys ['b', 'level']"),
        ("fit", [1], "fit: a mapping with strategy, larger_model, reserve_output"),
        ("fit", {1: 2}, "fit: unknown keys ['1']"),
    ],
)
def test_each_section_names_its_key_when_not_a_mapping_or_with_unknown_keys(
    section: str, raw: object, message: str
) -> None:
    steps = {"pre": ["redact", "screen", "fit"], "post": ["redact_output"], section: raw}
    with pytest.raises(ConfigError) as caught:
        parse_steps("r", steps)
    assert str(caught.value) == f"routes.r.steps.{message}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["redact"], "a mapping with pre, post and the steps' settings"),
        ({"pre": [], "after": []}, "unknown keys ['after']"),
    ],
)
def test_the_steps_themselves_name_their_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_steps("r", raw, "tenants.t.steps")
    assert str(caught.value) == f"tenants.t.steps: {message}"
