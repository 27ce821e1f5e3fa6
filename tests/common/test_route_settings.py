"""The routes section's pools and fallbacks: parsed, and refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.route_settings import DeploymentConfig, PoolConfig


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "llmesh.yaml"
    path.write_text(text)
    return load_config(path, env={})


def test_a_pool_route_lists_its_deployments_as_its_targets(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
providers:
  east: {kind: openai-compatible, base_url: "http://east/v1"}
  west: {kind: openai-compatible, base_url: "http://west/v1"}
routes:
  gpt:
    pool:
      - {target: east/gpt-4o, weight: 2, rpm: 600, tpm: 100000}
      - west/gpt-4o
    strategy: latency
    latency_decay: 5
    fallbacks: [emulator/echo]
""",
    )
    route = config.routes["gpt"]
    assert route.targets == ("east/gpt-4o", "west/gpt-4o")
    assert route.pool == PoolConfig(
        (
            DeploymentConfig("east/gpt-4o", 2.0, 600.0, 100000.0),
            DeploymentConfig("west/gpt-4o"),
        ),
        "latency",
        latency_decay=5.0,
        near_limit=0.9,
    )
    assert route.fallbacks == ("emulator/echo",)


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ("{pool: [], strategy: latency}", "routes.r.pool: a non-empty list"),
        ("{pool: [a/m], targets: [a/m]}", "routes.r: give either targets"),
        ("{targets: [a/m], strategy: latency}", "routes.r: strategy need a pool"),
        ("{pool: [a/m], strategy: fastest}", "routes.r.strategy: 'fastest' is not one of"),
        ("{pool: [{target: a/m, weight: 0}]}", "routes.r.pool[0].weight: expected a number > 0"),
        ("{pool: [{target: a/m, rpm: -1}]}", "routes.r.pool[0].rpm: expected a number > 0"),
        ("{pool: [{target: a/m, qps: 1}]}", "routes.r.pool[0]: unknown keys ['qps']"),
        ("{pool: [{weight: 1}]}", "routes.r.pool[0].target: a provider/model name"),
        ("{pool: [a/m, a/m]}", "routes.r.pool: a/m is listed twice"),
        ("{pool: [a/m], near_limit: 1.5}", "routes.r.near_limit: a share of the limit"),
        ("{targets: [a/m], fallbacks: r}", "routes.r.fallbacks: expected a list of names"),
    ],
)
def test_bad_pools_name_the_key(tmp_path: Path, route: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f"routes:\n  r: {route}\n")
    assert error in str(info.value)


def test_fallbacks_that_lead_back_to_the_route_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(
            tmp_path,
            """
routes:
  a: {targets: [emulator/echo], fallbacks: [b]}
  b: {pool: [emulator/echo], fallbacks: [openai/gpt-4o, a]}
""",
        )
    assert "routes.a.fallbacks: a cycle of routes: a -> b -> a" in str(info.value)
