import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.config_fields import FieldError
from llmesh.services.common.telemetry_settings import EXCLUDED_URLS
from llmesh.services.telemetry.settings import (
    MetricsSettings,
    TelemetrySettings,
    TracingSettings,
    parse_telemetry,
)


def test_nothing_configured_means_off() -> None:
    settings = parse_telemetry(None, {})
    assert settings == TelemetrySettings()
    assert not settings.enabled
    assert not load_config(None, env={}).telemetry.enabled


def test_an_otlp_endpoint_in_the_environment_turns_tracing_on() -> None:
    settings = parse_telemetry(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert settings.tracing.enabled
    assert settings.tracing.endpoint == "http://collector:4317"
    assert settings.tracing.protocol == "grpc"
    assert not settings.metrics.enabled


def test_http_protobuf_appends_the_signal_path_to_the_generic_endpoint_only() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    assert parse_telemetry(None, env).tracing.endpoint == "http://collector:4318/v1/traces"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://other:4318/custom"
    settings = parse_telemetry(None, env)
    assert settings.tracing.endpoint == "http://other:4318/custom"
    assert settings.metrics.endpoint == "http://collector:4318/v1/metrics"


def test_the_file_configures_and_the_environment_wins() -> None:
    raw = {
        "service_name": "mesh",
        "tracing": {"enabled": True, "sampler": "traceidratio", "sampler_arg": 0.25},
        "metrics": {"enabled": True, "orchestrator_port": 9100},
    }
    settings = parse_telemetry(raw, {})
    assert settings.service_name == "mesh"
    assert settings.tracing == TracingSettings(
        enabled=True, sampler="traceidratio", sampler_arg=0.25
    )
    assert settings.metrics == MetricsSettings(enabled=True, orchestrator_port=9100)
    env = {
        "OTEL_SERVICE_NAME": "other",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "prometheus,otlp",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
    }
    settings = parse_telemetry(raw, env)
    assert settings.service_name == "other"
    assert not settings.tracing.enabled
    assert (settings.tracing.sampler, settings.tracing.sampler_arg) == ("always_on", 0.5)
    assert settings.metrics.otlp
    assert settings.metrics.protocol == "http/protobuf"


def test_an_explicit_enabled_false_in_the_file_beats_an_endpoint() -> None:
    raw = {"tracing": {"enabled": False}}
    assert not parse_telemetry(raw, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}).enabled
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "otlp"}
    assert parse_telemetry(raw, env).tracing.enabled


def test_sdk_disabled_turns_everything_off() -> None:
    raw = {"tracing": {"enabled": True}, "metrics": {"enabled": True}}
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}
    assert not parse_telemetry(raw, env).enabled


def test_content_capture_follows_the_genai_switch() -> None:
    assert not parse_telemetry({"tracing": {"enabled": True}}, {}).tracing.capture_content
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "True"}
    assert parse_telemetry({"tracing": {"enabled": True}}, env).tracing.capture_content
    raw = {"tracing": {"capture_content": True}}
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}
    assert not parse_telemetry(raw, env).tracing.capture_content


def test_the_grpc_instrumentation_is_llmeshs_unless_chosen() -> None:
    assert parse_telemetry(None, {}).tracing.grpc_instrumentation == "llmesh"
    raw = {"tracing": {"enabled": True, "grpc_instrumentation": "opentelemetry"}}
    assert parse_telemetry(raw, {}).tracing.grpc_instrumentation == "opentelemetry"
    env = {"LLMESH_TRACING_GRPC_INSTRUMENTATION": "llmesh"}
    assert parse_telemetry(raw, env).tracing.grpc_instrumentation == "llmesh"
    env = {"LLMESH_TRACING_GRPC_INSTRUMENTATION": "OpenTelemetry"}
    assert parse_telemetry(None, env).tracing.grpc_instrumentation == "opentelemetry"


def test_probes_and_scrapes_are_excluded_unless_the_file_or_the_otel_variables_say() -> None:
    assert parse_telemetry(None, {}).tracing.excluded_urls == EXCLUDED_URLS
    assert EXCLUDED_URLS == ("/healthz$", "/readyz$", "/metrics$")
    raw = {"tracing": {"enabled": True, "excluded_urls": ["/console"]}}
    assert parse_telemetry(raw, {}).tracing.excluded_urls == ("/console",)
    everything = {"tracing": {"enabled": True, "excluded_urls": []}}
    assert parse_telemetry(everything, {}).tracing.excluded_urls == ()
    generic = {"OTEL_PYTHON_EXCLUDED_URLS": " healthz , client/.*/info ,"}
    assert parse_telemetry(raw, generic).tracing.excluded_urls == ("healthz", "client/.*/info")
    starlette = {**generic, "OTEL_PYTHON_STARLETTE_EXCLUDED_URLS": "ping"}
    assert parse_telemetry(raw, starlette).tracing.excluded_urls == ("ping",)


@pytest.mark.parametrize(
    ("raw", "env", "message"),
    [
        (
            {"tracing": {"excluded_urls": ["ok", "[z-a]"]}},
            {},
            "telemetry.tracing.excluded_urls: '[z-a]' is not a regular expression",
        ),
        (
            {"tracing": {"excluded_urls": "/healthz"}},
            {},
            "telemetry.tracing.excluded_urls: expected a list of strings",
        ),
        (
            None,
            {"OTEL_PYTHON_EXCLUDED_URLS": "a,[b"},
            "OTEL_PYTHON_EXCLUDED_URLS: '[b' is not a regular expression",
        ),
        ({"tracing": {"protocol": "udp"}}, {}, "telemetry.tracing.protocol: one of"),
        ({"tracing": {"sampler_arg": 2}}, {}, "telemetry.tracing.sampler_arg: a ratio"),
        ({"tracing": {"enabled": "yes"}}, {}, "telemetry.tracing.enabled: expected true or false"),
        ({"traces": {}}, {}, "telemetry: unknown keys ['traces']"),
        (None, {"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER: one of"),
        (None, {"OTEL_TRACES_SAMPLER_ARG": "x"}, "OTEL_TRACES_SAMPLER_ARG: a ratio"),
        (None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        (None, {"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: unknown exporters"),
        (
            {"tracing": {"grpc_instrumentation": "sdk"}},
            {},
            "telemetry.tracing.grpc_instrumentation: one of",
        ),
        (
            None,
            {"LLMESH_TRACING_GRPC_INSTRUMENTATION": "sdk"},
            "LLMESH_TRACING_GRPC_INSTRUMENTATION: one of",
        ),
    ],
)
def test_bad_values_name_the_key_or_variable(
    raw: object, env: dict[str, str], message: str
) -> None:
    with pytest.raises(FieldError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_telemetry(raw, env)


def test_load_config_reads_the_section_and_names_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("telemetry:\n  tracing:\n    enabled: true\n    protocol: http/protobuf\n")
    config = load_config(path, env={})
    assert config.telemetry.tracing == TracingSettings(enabled=True, protocol="http/protobuf")
    path.write_text("telemetry:\n  tracing:\n    sampler: sometimes\n")
    with pytest.raises(ConfigError, match=r"^telemetry\.tracing\.sampler: one of"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match=r"^OTEL_TRACES_SAMPLER_ARG"):
        load_config(None, env={"OTEL_TRACES_SAMPLER_ARG": "many"})


def test_the_standalone_gateway_reads_the_otel_variables() -> None:
    env = {**os.environ, "OTEL_TRACES_SAMPLER": "sometimes"}
    done = subprocess.run(
        [sys.executable, "-m", "llmesh.gateway", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "python -m llmesh.gateway: OTEL_TRACES_SAMPLER: one of" in done.stderr
