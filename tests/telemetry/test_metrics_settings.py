"""``telemetry.metrics`` and the environment: off by default, on when asked, bad values named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.metrics_settings import (
    MetricsSettings,
    call_log_enabled,
    metrics_settings,
)


def test_metrics_are_off_when_nothing_asks_for_them() -> None:
    assert metrics_settings({}, {}) == MetricsSettings()
    assert not MetricsSettings().enabled


def test_the_file_turns_them_on_and_names_ports_and_tenants(tmp_path: Any) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text(
        "telemetry:\n  metrics:\n    enabled: true\n    orchestrator_port: 9100\n"
        "    processor_port: 0\n    tenants: [acme]\n"
    )
    config = load_config(path, env={})
    settings = config.telemetry.metrics
    assert settings.enabled and settings.prometheus and not settings.otlp
    assert (settings.orchestrator_port, settings.processor_port) == (9100, 0)
    assert settings.tenant_label("acme") == "acme"
    assert settings.tenant_label("zeta") == "other"


@pytest.mark.parametrize(
    ("exporters", "prometheus", "otlp", "enabled"),
    [
        ("prometheus", True, False, True),
        ("otlp", False, True, True),
        ("prometheus,otlp", True, True, True),
        ("none", False, False, False),
    ],
)
def test_otel_metrics_exporter_wins_over_the_file(
    exporters: str, prometheus: bool, otlp: bool, enabled: bool
) -> None:
    s = metrics_settings({"metrics": {"enabled": True}}, {"OTEL_METRICS_EXPORTER": exporters})
    assert (s.prometheus, s.otlp, s.enabled) == (prometheus, otlp, enabled)


def test_the_sdk_switch_turns_everything_off() -> None:
    env = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_SDK_DISABLED": "true"}
    assert not metrics_settings({}, env).enabled


def test_ports_and_the_export_interval_come_from_the_environment() -> None:
    env = {
        "LLMESH_ORCHESTRATOR_METRICS_PORT": "9200",
        "LLMESH_PROCESSOR_METRICS_PORT": "9201",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
    }
    s = metrics_settings({}, env)
    assert (s.orchestrator_port, s.processor_port, s.export_interval) == (9200, 9201, 5.0)


@pytest.mark.parametrize(
    ("section", "env", "named"),
    [
        ({"metrics": {"enabled": "yes"}}, {}, "telemetry.metrics.enabled"),
        ({"metrics": {"orchestrator_port": 70000}}, {}, "telemetry.metrics.orchestrator_port"),
        ({"metrics": {"tenants": "acme"}}, {}, "telemetry.metrics.tenants"),
        ({"metrics": {"colour": 1}}, {}, "telemetry.metrics: unknown keys ['colour']"),
        ({}, {"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER"),
        ({}, {"LLMESH_PROCESSOR_METRICS_PORT": "x"}, "LLMESH_PROCESSOR_METRICS_PORT"),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "0"}, "OTEL_METRIC_EXPORT_INTERVAL"),
    ],
)
def test_a_bad_value_names_its_key(section: Any, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        metrics_settings(section, env)


def test_the_call_log_is_on_unless_switched_off() -> None:
    assert not call_log_enabled({}, {})  # off unless asked: it costs CPU on every call
    assert call_log_enabled({"logs": {"calls": True}}, {})
    assert not call_log_enabled({"logs": {"calls": False}}, {})
    assert call_log_enabled({"logs": {"calls": False}}, {"LLMESH_CALL_LOG": "true"})
    with pytest.raises(ConfigError, match=re.escape("telemetry.logs.calls")):
        call_log_enabled({"logs": {"calls": "no"}}, {})


def test_an_unknown_top_level_key_is_still_refused_beside_telemetry(tmp_path: Any) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text("telemetry: {}\ntelemetree: {}\n")
    with pytest.raises(ConfigError, match="telemetree"):
        load_config(path, env={})


def test_the_example_file_documents_the_defaults() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "llmesh.example.yaml", env={})
    assert config.telemetry.metrics == MetricsSettings()
    assert not config.telemetry.logs.calls
