"""How the gateway spreads its calls over orchestrator replicas: grpc's own client-side
load balancing, configured, not re-implemented.

- The target names the replicas: one ``host:port`` (grpc's DNS resolver: every address the
  name resolves to), ``dns:///orchestrator.svc:50051`` (a Kubernetes headless Service: one
  address per pod), or a static list ``10.0.0.1:50051,10.0.0.2:50051`` (grpc's ``ipv4:`` /
  ``ipv6:`` resolver, IP literals only).
- ``round_robin`` opens a subchannel to every address and takes them in turn.
- Client-side health checking (``healthCheckConfig``) watches each replica's
  ``grpc.health.v1`` status of the orchestrator's service: a replica that turns NOT_SERVING
  (draining on SIGTERM, or its Redis / ledger database unreachable) gets no new calls.
- A call that found its replica gone before the replica saw it (connection refused or
  closed, the stream refused by a server shutting down) is retried on another replica by
  grpc's transparent retries, on by default. There is deliberately no ``retryPolicy`` on
  UNAVAILABLE: a replica answers UNAVAILABLE for calls that did reach a provider (an
  upstream outage, a call cut by a drain), and retrying those would run them twice. Nor is
  a stream ever retried once a reply message arrived: grpc commits a call on its first
  response message.
"""

from __future__ import annotations

import ipaddress
import json

ORCHESTRATOR_SERVICE = "llmesh.v1.OrchestratorService"

_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def service_config(health_service: str | None = ORCHESTRATOR_SERVICE) -> str:
    """The channel's default service config: round robin over the replicas, each one
    health-checked on `health_service` (None: not health-checked)."""
    config: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if health_service is not None:
        config["healthCheckConfig"] = {"serviceName": health_service}
    return json.dumps(config)


def channel_target(address: str) -> str:
    """The grpc target naming the replicas in `address` (see the module docstring).

    Raises `ValueError` naming the bad entry for a list holding something other than IP
    ``host:port`` addresses, or mixing IPv4 and IPv6."""
    address = address.strip()
    if address.startswith(_SCHEMES) or "," not in address:
        return address
    families: set[int] = set()
    entries: list[str] = []
    for entry in (e.strip() for e in address.split(",")):
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if not sep or not port.isdigit() or ip is None:
            raise ValueError(
                f"orchestrator address list: {entry!r} is not an IP host:port; a list names "
                "IP addresses (10.0.0.1:50051,10.0.0.2:50051); for names use one "
                "dns:///name:port target"
            )
        families.add(ip.version)
        entries.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    if len(families) > 1:
        raise ValueError("orchestrator address list: mixes IPv4 and IPv6 addresses")
    return f"ipv{families.pop()}:{','.join(entries)}"
