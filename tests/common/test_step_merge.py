"""How a tenant's steps combine with a route's: union of steps, the stricter setting wins."""

from __future__ import annotations

from typing import Any

from llmesh.services.common.step_merge import merge_steps
from llmesh.services.common.step_settings import (
    RedactionMode,
    ScreenAction,
    StepsConfig,
    parse_steps,
)


def _steps(raw: dict[str, Any]) -> StepsConfig:
    steps = parse_steps("r", raw)
    assert steps is not None
    return steps


def test_either_side_alone_is_used_as_it_is() -> None:
    route = _steps({"pre": ["redact"]})
    assert merge_steps(route, None) is route
    assert merge_steps(None, route) is route
    assert merge_steps(None, None) is None


def test_steps_are_the_union_in_their_fixed_order() -> None:
    route = _steps({"pre": ["redact", "fit"], "post": ["redact_output"]})
    tenant = _steps({"pre": ["screen"], "post": []})
    merged = merge_steps(route, tenant)
    assert merged is not None
    assert merged.pre == ("screen", "redact", "fit") and merged.post == ("redact_output",)


def test_the_stricter_redaction_wins_and_detectors_patterns_words_add_up() -> None:
    route = _steps(
        {
            "pre": ["redact"],
            "post": ["restore"],
            "redact": {"detectors": ["email"], "words": {"project": ["Falcon"]}},
        }
    )
    tenant = _steps(
        {
            "pre": ["redact"],
            "redact": {
                "mode": "mask",
                "detectors": ["ip"],
                "patterns": {"ticket": "TCK-[0-9]+"},
                "words": {"project": ["Osprey", "Falcon"]},
            },
        }
    )
    merged = merge_steps(route, tenant)
    assert merged is not None
    assert merged.redact.mode is RedactionMode.MASK
    assert merged.redact.detectors == ("email", "ipv4", "ipv6")
    assert merged.redact.patterns == (("ticket", "TCK-[0-9]+"),)
    assert merged.redact.words == (("project", ("Falcon", "Osprey")),)
    assert merged.post == ()  # masked values cannot be restored
    block = merge_steps(tenant, _steps({"pre": ["redact"], "redact": {"mode": "block"}}))
    assert block is not None and block.redact.mode is RedactionMode.BLOCK


def test_the_stricter_screening_wins_with_its_route_to() -> None:
    route = _steps({"pre": ["screen"], "screen": {"threshold": 0.7, "rules": ["jailbreak"]}})
    tenant = _steps(
        {
            "pre": ["screen"],
            "screen": {
                "action": "route",
                "route_to": "openai/gpt-4o",
                "threshold": 0.4,
                "rules": ["ignore_previous"],
            },
        }
    )
    merged = merge_steps(route, tenant)
    assert merged is not None
    assert merged.screen.action is ScreenAction.ROUTE
    assert merged.screen.route_to == "openai/gpt-4o" and merged.screen.threshold == 0.4
    assert merged.screen.rules == ("ignore_previous", "jailbreak")
    blocking = _steps({"pre": ["screen"], "screen": {"action": "block"}})
    strictest = merge_steps(blocking, tenant)
    assert strictest is not None and strictest.screen.action is ScreenAction.BLOCK


def test_output_rules_add_up_and_fit_is_the_routes() -> None:
    route = _steps(
        {
            "pre": ["fit"],
            "fit": {"reserve_output": 100},
            "post": ["redact_output"],
            "redact_output": {"detectors": ["email"]},
        }
    )
    tenant = _steps(
        {
            "pre": ["fit"],
            "fit": {"reserve_output": 5},
            "post": ["redact_output"],
            "redact_output": {"detectors": ["secrets"]},
        }
    )
    merged = merge_steps(route, tenant)
    assert merged is not None
    assert merged.redact_output.mode is RedactionMode.MASK
    assert set(merged.redact_output.detectors) == {"email", *tenant.redact_output.detectors}
    assert merged.fit.reserve_output == 100
    only_tenant = merge_steps(_steps({"pre": ["redact"]}), tenant)
    assert only_tenant is not None and only_tenant.fit.reserve_output == 5
