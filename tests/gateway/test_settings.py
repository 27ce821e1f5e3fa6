from dataclasses import fields

from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.config import Config


def test_upstream_defaults_are_the_mesh_configs() -> None:
    """The gateway's defaults are the ones `Config` declares, so they cannot drift apart."""
    mapped = GatewaySettings.from_config(Config())
    default = GatewaySettings()
    for f in fields(GatewaySettings):
        assert getattr(mapped, f.name) == getattr(default, f.name), f.name
    assert default.orchestrator_address == Config().orchestrator_address
    assert default.processor_address == Config().processor_address
