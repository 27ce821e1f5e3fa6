from dataclasses import fields, replace

from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.config import Config


def test_upstream_defaults_are_the_mesh_configs() -> None:
    """The gateway's defaults are the ones `Config` declares, so they cannot drift apart."""
    mapped = GatewaySettings.from_config(Config())
    default = GatewaySettings()
    for f in fields(GatewaySettings):
        assert getattr(mapped, f.name) == getattr(default, f.name), f.name
    assert default.orchestrator_address == Config().orchestrator_address
    assert default.processor_address == Config().processor_address


def test_the_batch_file_limit_is_the_batch_sections() -> None:
    """``POST /v1/files`` accepts what the orchestrator's ``batch.max_file_bytes`` does."""
    config = replace(Config(), batch=BatchConfig(max_file_bytes=1234))
    assert GatewaySettings.from_config(config).max_batch_file_bytes == 1234
