"""A mesh of real processes sharing Redis and PostgreSQL: an emulator, a processor, several
orchestrator replicas (``llmesh serve orchestrator``) and gateways balancing over them.

Every replica reads one configuration file; only its own listen address differs
(``LLMESH_ORCHESTRATOR_ADDRESS``, ``LLMESH_GATEWAY_PORT``). The ledger and the API keys go
to a PostgreSQL schema of the run's own, and the Redis state is keyed by tenants and a
breaker namespace of the run's own, so runs never collide.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.ports import free_port

BIN = Path(sys.executable).parent
BUDGET_USD = 0.004
"""The daily budget of the run's ``budget`` tenant: a few calls' worth."""
RATE_PER_MINUTE = 6
"""The request rate of the run's ``rate`` tenant."""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Fleet:
    """The processes of one run, their addresses, and the run's unique names."""

    workdir: Path
    redis_url: str
    postgres_url: str
    orchestrators: int = 3
    gateways: int = 2
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    emulator_port: int = field(default_factory=free_port)
    processor_port: int = field(default_factory=free_port)
    orchestrator_ports: list[int] = field(default_factory=list)
    gateway_ports: list[int] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """API keys by tenant short name (created in the run's schema before the start)."""

    @property
    def schema(self) -> str:
        """The run's PostgreSQL schema (ledger and keys)."""
        return f"llmesh_replicas_{self.run}"

    @property
    def database_url(self) -> str:
        return f"{self.postgres_url}?schema={self.schema}"

    def tenant(self, name: str) -> str:
        """A tenant name of this run's own (budgets and rate limits live in Redis by tenant)."""
        return f"{name}-{self.run}"

    def config(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The shared configuration file's content."""
        redis = self.redis_url
        addresses = [f"127.0.0.1:{p}" for p in self.orchestrator_ports]
        return {
            "orchestrator": {"shutdown_grace": 10},
            "processor": {"address": f"127.0.0.1:{self.processor_port}"},
            "gateway": {"orchestrators": addresses},
            "emulator": {"host": "127.0.0.1", "port": self.emulator_port},
            "ledger": {"url": self.database_url, "flush_interval": 0.05},
            "resilience": {
                "breaker": {
                    "fail_max": 3,
                    "reset_timeout": 120,
                    "redis_url": redis,
                    "redis_namespace": f"llmesh:test-breaker:{self.run}",
                },
                "retry": {"max_attempts": 1},
            },
            "budgets": {"redis_url": redis, **extra.get("budgets", {})},
            "rate_limits": {"redis_url": redis, **extra.get("rate_limits", {})},
            "cache": {"response": {"redis_url": redis}},
            "prices": {"emulator/*": {"input": 10, "output": 10}},
        }

    def _env(self, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMESH_", "OTEL_"))}
        env.pop("OPENAI_BASE_URL", None)
        env.pop("ANTHROPIC_BASE_URL", None)
        return env | {"LLMESH_CONFIG": str(self.workdir / "llmesh.yaml"), **more}

    def _spawn(self, name: str, service: str, port: int, **env: str) -> None:
        with open(self.workdir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [str(BIN / "llmesh"), "serve", service],
                env=self._env(PYTHONUNBUFFERED="1", **env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[name].port = port  # type: ignore[attr-defined]

    def start(self, extra: dict[str, Any] | None = None) -> Fleet:
        """Write the configuration, start every process, wait until the gateways are ready."""
        self.orchestrator_ports = [free_port() for _ in range(self.orchestrators)]
        self.gateway_ports = [free_port() for _ in range(self.gateways)]
        (self.workdir / "llmesh.yaml").write_text(yaml.safe_dump(self.config(extra or {})))
        self._spawn("emulator", "emulator", self.emulator_port)
        self._spawn("processor", "processor", self.processor_port)
        for i, port in enumerate(self.orchestrator_ports):
            self._spawn(
                f"orch{i}", "orchestrator", port, LLMESH_ORCHESTRATOR_ADDRESS=f"127.0.0.1:{port}"
            )
        for i, port in enumerate(self.gateway_ports):
            self._spawn(f"gw{i}", "gateway", port, LLMESH_GATEWAY_PORT=str(port))
        deadline = time.monotonic() + 45
        for name, proc in self.procs.items():
            while not _listening(proc.port):  # type: ignore[attr-defined]
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not start:\n{self.log(name)}")
                time.sleep(0.05)
        for url in self.gateway_urls:
            while httpx.get(f"{url}/readyz").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} never became ready")
                time.sleep(0.1)
        return self

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.gateway_ports]

    @property
    def orchestrator_addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.orchestrator_ports]

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def set_fault(self, model: str, fault: str, **params: Any) -> None:
        r = httpx.post(
            f"{self.emulator_url}/emulator/faults", json={"model": model, "fault": fault, **params}
        )
        r.raise_for_status()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def stop(self) -> None:
        """SIGTERM every process still running (gateways first), then wait for each."""
        order = sorted(self.procs, key=lambda n: (not n.startswith("gw"), n))
        for name in order:
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        for name in order:
            try:
                self.procs[name].wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.procs[name].kill()
                self.procs[name].wait()
