"""The gateway's configuration: where the upstream services are and what the HTTP side accepts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmesh.gateway.balancing import channel_target
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.config import Config, ConfigError, default_database_url
from llmesh.services.common.media_settings import grpc_message_limit, http_body_limit
from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.common.telemetry_settings import TelemetrySettings
from llmesh.services.common.tls_settings import TlsSettings

CHANNELS_PER_WORKER = 4
"""Channels a gateway opens per orchestrator worker by default: the kernel spreads
connections over a port's workers by a hash of their ports, unevenly, so one per worker
would often leave a worker with none (2 workers: half the time; with 4 each, 1 in 128)."""


def orchestrator_channels(config: Config, workers: int | None = None) -> int:
    """``gateway.orchestrator_channels``, else `CHANNELS_PER_WORKER` per orchestrator worker
    (`workers`, else ``orchestrator.workers``) when there is more than one, else one."""
    if config.gateway_orchestrator_channels is not None:
        return config.gateway_orchestrator_channels
    workers = workers or config.orchestrator_workers or 1
    return CHANNELS_PER_WORKER * workers if workers > 1 else 1


@dataclass(frozen=True)
class GatewaySettings:
    """Everything `create_app` needs; built once at startup and never mutated."""

    orchestrator_address: str = Config.orchestrator_address
    """The orchestrator replicas: one ``host:port``, a ``dns:///name:port`` target, or a
    comma-separated list of IP ``host:port`` (see `llmesh.gateway.balancing`)."""
    orchestrator_channels: int = 1
    """gRPC channels to the orchestrator, each with its own connection to every replica; each
    call goes to the one with the fewest calls in flight (`llmesh.gateway.channel_pool`), so
    calls spread over the workers of a replica serving its port from several processes."""
    processor_address: str = Config.processor_address
    """The processor's gRPC address: like `orchestrator_address` (round robin over its
    replicas, not health-checked)."""
    max_body_bytes: int = http_body_limit(Config.max_message_bytes)
    """The largest request body (or WebSocket frame) accepted; larger bodies get a 413.
    Derived from ``limits.max_message_bytes`` with room for base64 (`http_body_limit`), so a
    request within the gRPC limit is never refused here for its base64 overhead."""
    max_batch_file_bytes: int = BatchConfig.max_file_bytes
    """The largest batch input file ``POST /v1/files`` accepts (``batch.max_file_bytes``,
    200 MiB by default, as OpenAI's limit); larger uploads get a 413. Each of its lines is
    bounded by `max_body_bytes` too."""
    max_grpc_message_bytes: int = grpc_message_limit(Config.max_message_bytes)
    """The largest gRPC message sent to or received from the upstream services."""
    default_timeout: float | None = None
    """The gRPC deadline in seconds when a request sends no ``x-llmesh-timeout``; None for none."""
    health_timeout: float = 2.0
    """Seconds ``/healthz`` and ``/readyz`` wait for a health check."""
    health_service: str = ""
    """The service name ``/healthz`` asks about in the orchestrator's ``grpc.health.v1``
    check: ``""``, the server as a whole, SERVING from start until shutdown begins."""
    ready_service: str = "llmesh.v1.OrchestratorService"
    """The name ``/readyz`` asks the orchestrator about: SERVING only while its
    dependencies (ledger database, Redis) answer."""
    processor_ready_service: str = "llmesh.v1.ProcessorService"
    """The name ``/readyz`` asks the processor about."""
    shutdown_grace: int = 10
    """Seconds open connections get to finish when the server stops."""
    key_store_url: str = field(default_factory=default_database_url)
    """Where the mesh's API keys live (its ``ledger.url``): a non-loopback bind is refused
    at start-up when none exist there (the orchestrator and processor check the keys)."""
    allow_unauthenticated: bool = Config.allow_unauthenticated
    """Bind a non-loopback address even though no API keys exist (logged as a WARNING)."""
    jwt_issuers: tuple[JwtIssuer, ...] = ()
    """Issuers whose bearer tokens the services behind accept (``auth.jwt``): a non-loopback
    bind needs no keys then, and stored responses belong to the token's tenant."""
    drop_params: frozenset[str] = frozenset(Config.gateway_drop_params)
    """``/v1/chat/completions`` fields accepted and dropped rather than refused with a 400
    (named in the ``x-llmesh-dropped-params`` response header); fields llmesh honours are
    never dropped."""
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    """Traces and metrics (the configuration's ``telemetry``); off by default."""

    route_drop_params: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """More fields to drop, by route name: a call whose ``model`` names the route may carry
    them too (``routes.<name>.drop_params``)."""
    unknown_fields: str = Config.gateway_unknown_fields
    """``reject`` unknown /v1 chat fields with a 400, or ``drop`` them (named in the header)."""
    response_store_url: str | None = field(default_factory=default_database_url)
    """The ledger database keeping ``/v1/responses`` responses for ``previous_response_id``
    (the mesh's ``ledger.url``, opened on first use); None turns response storage off."""
    response_ttl: float = Config.gateway_response_ttl_days * 86400
    """Seconds a stored response is kept (``gateway.response_ttl_days``)."""
    tls: TlsSettings = field(default_factory=TlsSettings)
    """The HTTP listener's certificate (and client CA), and what the gRPC channels to the
    orchestrator and the processor trust and present (``tls``, ``tls.gateway``)."""

    def __post_init__(self) -> None:
        if self.orchestrator_channels < 1:
            raise ValueError(
                f"orchestrator_channels: expected >= 1, got {self.orchestrator_channels}"
            )
        channel_target(self.orchestrator_address)  # a bad replica list fails at start-up
        channel_target(self.processor_address)
        for service, address in (
            ("orchestrator", self.orchestrator_address),
            ("processor", self.processor_address),
        ):
            if "," in address and self.tls.dials_tls and self.tls.server_name is None:
                raise ConfigError(  # one channel checks one name against every replica
                    f"tls: the gateway dials {service} replicas by IP address ({address}): "
                    "set tls.server_name (or tls.gateway.server_name) to a name every "
                    "replica's certificate carries"
                )

    @property
    def metrics(self) -> MetricsSettings:
        """The ``telemetry.metrics`` settings: when enabled, ``/metrics`` on the gateway's port."""
        return self.telemetry.metrics

    def drops_for(self, model: object) -> frozenset[str]:
        """The fields a call to `model` may carry to be dropped: the deployment's and its
        route's."""
        route = self.route_drop_params.get(model) if isinstance(model, str) else None
        return self.drop_params | route if route else self.drop_params

    @classmethod
    def from_config(cls, config: Config) -> GatewaySettings:
        """The settings a mesh configuration implies."""
        return cls(
            orchestrator_address=",".join(config.gateway_orchestrators)
            or config.orchestrator_address,
            orchestrator_channels=orchestrator_channels(config),
            processor_address=config.processor_address,
            max_body_bytes=http_body_limit(config.max_message_bytes),
            max_grpc_message_bytes=grpc_message_limit(config.max_message_bytes),
            max_batch_file_bytes=config.batch.max_file_bytes,
            key_store_url=config.database_url,
            allow_unauthenticated=config.allow_unauthenticated,
            jwt_issuers=config.jwt_issuers,
            drop_params=frozenset(config.gateway_drop_params),
            route_drop_params={
                name: frozenset(route.drop_params)
                for name, route in config.routes.items()
                if route.drop_params
            },
            unknown_fields=config.gateway_unknown_fields,
            telemetry=config.telemetry,
            response_store_url=config.database_url if config.gateway_response_ttl_days else None,
            response_ttl=config.gateway_response_ttl_days * 86400,
            tls=config.tls.service("gateway"),
        )
