"""Configuration hot reload: routes, pools, aliases and providers, swapped while serving.

`Reloader.reload` reads the configuration file again, validates all of it (the same
`load_config` as at start), builds the adapters of providers that are new or whose settings
changed (reusing the others, and their connection pools), and a new `Router` over them;
only when all of that succeeded does it swap them in, with no await in between, so a call
is routed either wholly on the old configuration or wholly on the new one. A call already
routed keeps its targets and policy, and its attempts in flight keep their adapters: a
replaced adapter is closed only after its provider's ``timeout`` (or at shutdown).

A file that does not load or validate is logged with its error and the previous
configuration kept (`Reloader.rejected` counts them). Changes outside ``providers``,
``aliases``, ``routes`` and ``emulator`` (listeners, TLS, resilience, limits, budgets,
cache, prices, telemetry, ledger) need a restart; a reload that sees one logs which.

`Reloader.start` reloads on SIGHUP and when the file's content changes (its SHA-256,
polled every ``orchestrator.reload_interval`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from llmesh.services.common.config import Config, ConfigError, load_config, resolve_provider
from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.target import Target
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.path import CallPath
from llmesh.services.orchestrator.pools import Balancer, DeploymentStats
from llmesh.services.orchestrator.providers import ProviderRegistry, default_registry
from llmesh.services.orchestrator.providers.base import Provider
from llmesh.services.orchestrator.roles import Roles
from llmesh.services.orchestrator.routing import Router

__all__ = ["RELOADED", "Reloader", "make_router"]

_log = logging.getLogger("llmesh.orchestrator.reload")

RELOADED = frozenset({"providers", "aliases", "routes", "emulator"})
"""The `Config` fields a reload applies; a change to any other needs a restart."""


def make_router(config: Config, stats: DeploymentStats, prices: PriceTable | None) -> Router:
    """The router of `config`, balancing its pools on `stats` (which it points at them)."""

    def price(target: Target) -> float | None:
        found = None if prices is None else prices.price(target.provider, target.model)
        return None if found is None else found.input + found.output

    catalog = ModelCatalog(config.models.capabilities, prices)
    balancer = Balancer(stats, price)
    router = Router(
        config.providers,
        config.aliases,
        config.routes,
        balancer,
        catalog,
        tenant_steps=config.models.tenant_steps,
    )
    # the router is valid (it resolved every name): only now is `stats` pointed at it
    decays = {
        d.target: route.pool.latency_decay
        for route in config.routes.values()
        if route.pool is not None
        for d in route.pool.deployments
    }
    stats.watched = frozenset(router.pooled())
    stats.decay = lambda target: decays.get(target, 10.0)
    return router


@dataclass
class _Retired:
    provider: Provider
    close_at: float


class Reloader:
    """Re-reads the configuration file and swaps what can change while serving."""

    def __init__(
        self,
        path: str | None,
        config: Config,
        engine: Orchestrator,
        call_path: CallPath,
        *,
        prices: PriceTable | None = None,
        registry: ProviderRegistry | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`path` is the file to read (None: where `load_config` finds it); `config` is
        what is being served."""
        self._path = path
        self.config = config
        """The configuration in effect."""
        self._engine = engine
        self._call_path = call_path
        self._prices = prices
        self._registry = registry or default_registry()
        self._env = env
        self._clock = clock
        self._retired: list[_Retired] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[bool]] = set()
        self._digest: bytes | None = None
        self._loaded: Config | None = None
        """The file as last loaded (the served config may carry command-line overrides)."""
        self.reloads = 0
        """Reloads applied."""
        self.rejected = 0
        """Reloads refused (the file did not load or validate); the old config was kept."""

    def counts(self) -> list[tuple[float, dict[str, str]]]:
        """The ``llmesh.config.reloads`` gauge: reloads applied and rejected since start."""
        return [
            (float(self.reloads), {"llmesh.outcome": "applied"}),
            (float(self.rejected), {"llmesh.outcome": "rejected"}),
        ]

    async def reload(self) -> bool:
        """Apply the file as it is now; False (logged) when it was rejected."""
        async with self._lock:
            await self._close_retired()
            try:
                new = await asyncio.to_thread(load_config, self._path, self._env)
            except ConfigError as exc:
                return self._reject(str(exc))
            built: dict[str, Provider] = {}
            try:
                providers = self._providers(new, built)
                router = make_router(new, self._engine.deployments, self._prices)
            except (ConfigError, LlmeshError, ValueError) as exc:
                for provider in built.values():
                    await provider.aclose()
                return self._reject(str(exc))
            previous = {id(p): name for name, p in self._engine.providers.items()}
            retired = self._engine.swap_providers(providers)  # no await from here ...
            self._call_path.router = router  # ... to here: one config or the other
            self._call_path.roles = Roles(new.models.roles, new.models.tenant_roles)
            self._retire(retired, previous)
            old = self._loaded or self.config
            self.config = self._loaded = new
            self.reloads += 1
            restart = sorted(
                f.name
                for f in fields(Config)
                if f.name not in RELOADED and getattr(old, f.name) != getattr(new, f.name)
            )
            _log.info(
                "configuration reloaded: %d routes (%d pools), providers built %s, kept %d",
                len(new.routes),
                sum(r.pool is not None for r in new.routes.values()),
                sorted(built) or "none",
                len(providers) - len(built),
            )
            if restart:
                _log.warning(
                    "configuration reloaded, but these changes need a restart to apply: %s",
                    ", ".join(restart),
                )
            return True

    def _providers(self, new: Config, built: dict[str, Provider]) -> dict[str, Provider]:
        """The adapters for `new`: the current one where nothing that shapes it changed."""
        current = self._engine.providers
        out: dict[str, Provider] = {}
        for name, pc in new.providers.items():
            resolved = resolve_provider(pc, new.emulator, self._env)
            old_pc = self.config.providers.get(name)
            if (
                name in current
                and old_pc is not None
                and resolve_provider(old_pc, self.config.emulator, self._env) == resolved
            ):
                out[name] = current[name]
            else:
                out[name] = built[name] = self._registry.build(resolved)
        return out

    def _retire(self, providers: list[Provider], names: Mapping[int, str]) -> None:
        """Close `providers` once the streams they may carry are over (their timeout)."""
        now = self._clock()
        for provider in providers:
            pc = self.config.providers.get(names.get(id(provider), ""))
            wait = pc.timeout if pc is not None else 600.0
            self._retired.append(_Retired(provider, now + wait))

    def _reject(self, error: str) -> bool:
        self.rejected += 1
        _log.error(
            "configuration %s rejected, keeping the one in effect: %s",
            self._path or "file",
            error,
        )
        return False

    async def _close_retired(self, *, every: bool = False) -> None:
        now = self._clock()
        due = [r for r in self._retired if every or r.close_at <= now]
        self._retired = [r for r in self._retired if r not in due]
        for r in due:
            await r.provider.aclose()

    async def start(self, interval: float) -> None:
        """Reload on SIGHUP, and every `interval` seconds when the file changed (0: never)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConfigError):  # the baseline restart-only changes show against
            self._loaded = await asyncio.to_thread(load_config, self._path, self._env)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_signal)
        if interval > 0 and self._path:
            self._task = asyncio.ensure_future(self._watch(interval))

    def _on_signal(self) -> None:
        _log.info("SIGHUP: reloading the configuration")
        task = asyncio.ensure_future(self.reload())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _watch(self, interval: float) -> None:
        self._digest = await asyncio.to_thread(self._read_digest)
        while True:
            await asyncio.sleep(interval)
            digest = await asyncio.to_thread(self._read_digest)
            if digest is not None and digest != self._digest:
                self._digest = digest
                await self.reload()
            await self._close_retired()

    def _read_digest(self) -> bytes | None:
        assert self._path is not None
        try:
            return hashlib.sha256(Path(self._path).read_bytes()).digest()
        except OSError:
            return None

    async def aclose(self) -> None:
        """Stop watching and close every replaced adapter."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_retired(every=True)
