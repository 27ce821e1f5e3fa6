"""A whole mesh (emulator, orchestrator, processor, gateway) on ephemeral loopback ports.

It runs in a background thread with its own event loop, so any test, sync or async, in
any event loop, can talk to it over the network exactly as a real client would. The
orchestrator finds the emulator the way a user's deployment finds the real APIs: through
``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` and the API key variables.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from llmesh.services.common.config import (
    Config,
    EmulatorConfig,
    ProviderConfig,
    Resilience,
    load_config,
)
from llmesh.v1 import chat_pb2


@dataclass
class Mesh:
    """Addresses of a running mesh, and a way to program its emulator."""

    emulator_url: str = ""
    orchestrator_address: str = ""
    processor_address: str = ""
    gateway_url: str = ""
    direct_url: str = ""
    """The direct HTTP path: the gateway's routes served in the orchestrator's process."""
    config: Config | None = None
    media_fetcher: Any = None
    """A `MediaFetcher` for the orchestrator instead of the one its config builds."""
    emulator_windows: dict[str, int] = field(default_factory=dict)
    """The emulator's context window per model (`EmulatorSettings.context_windows`)."""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: Any = None
    _handles: dict[str, Any] = field(default_factory=dict)
    _tmp: str = ""

    def env(self) -> dict[str, str]:
        """The SDK environment variables pointing the orchestrator at the emulator."""
        return {
            "OPENAI_BASE_URL": f"{self.emulator_url}/v1",
            "OPENAI_API_KEY": "sk-test-openai",
            "ANTHROPIC_BASE_URL": self.emulator_url,
            "ANTHROPIC_API_KEY": "sk-ant-test",
        }

    # -- emulator control -------------------------------------------------------------
    def set_fault(self, model: str, fault: str, **params: Any) -> None:
        """Make the emulator answer `model` with `fault` until cleared."""
        r = httpx.post(
            f"{self.emulator_url}/emulator/faults", json={"model": model, "fault": fault, **params}
        )
        r.raise_for_status()

    def stats(self) -> dict[str, Any]:
        """The emulator's request and disconnect counters."""
        r = httpx.get(f"{self.emulator_url}/emulator/stats")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def task_names(self) -> list[str]:
        """What each task alive in the mesh's event loop is running (for diagnostics)."""
        assert self._loop is not None

        async def names() -> list[str]:
            return sorted(repr(t.get_coro()) for t in asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(names(), self._loop).result(timeout=5)

    def task_count(self) -> int:
        """Tasks alive in the mesh's event loop (to prove nothing is left running)."""
        assert self._loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(timeout=5)

    # -- lifecycle --------------------------------------------------------------------
    def start(self, overrides: Mapping[str, Any] | None = None) -> Mesh:
        """Start every service and return once all accept connections."""
        ready: Future[None] = Future()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._run(ready, overrides or {}))
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="mesh", daemon=True)
        self._thread.start()
        ready.result(timeout=60)
        return self

    async def _run(self, ready: Future[None], overrides: Mapping[str, Any]) -> None:
        from llmesh.gateway.server import start as start_gateway
        from llmesh.gateway.settings import GatewaySettings
        from llmesh.services.direct import serve_direct
        from llmesh.services.emulator.app import start as start_emulator
        from llmesh.services.emulator.settings import EmulatorSettings
        from llmesh.services.orchestrator.server import build_engine, serve
        from llmesh.services.processor.server import serve as serve_processor

        self._stop = asyncio.Event()
        try:
            runner, emu_port = await start_emulator(
                EmulatorSettings(host="127.0.0.1", port=0, context_windows=self.emulator_windows)
            )
            self.emulator_url = f"http://127.0.0.1:{emu_port}"
            base = load_config(None, env={})
            compat = ProviderConfig(  # any OpenAI-compatible server, named in configuration
                "compat",
                "openai-compatible",
                base_url=f"{self.emulator_url}/v1",
                api_key="compat-key",
                models=("echo",),
            )
            self._tmp = tempfile.mkdtemp(prefix="llmesh-mesh-")
            settings: dict[str, Any] = dict(
                database_url=f"sqlite:///{self._tmp}/llmesh.db",
                emulator=EmulatorConfig("127.0.0.1", emu_port),
                providers={**base.providers, "compat": compat},
                aliases={"fast": "emulator/echo", "smart": "anthropic/claude-haiku-4-5"},
                # contract cases repeat faults on purpose: breakers are tested on their own
                resilience=Resilience.from_mapping(
                    {
                        "breaker": {"fail_max": 100_000},
                        "retry": {
                            "initial_backoff": 0.01,
                            "max_backoff": 0.05,
                            "jitter": 0.0,
                            "max_retry_after": 1.0,
                        },
                    }
                ),
            )
            settings.update(overrides)  # an override (resilience too) wins over the above
            config = replace(base, **settings)
            proc = await serve_processor("127.0.0.1:0", config=config)
            self.processor_address = f"127.0.0.1:{proc.port}"
            config = replace(config, processor_address=self.processor_address)
            self.config = config
            engine = build_engine(config, env=self.env(), fetcher=self.media_fetcher)
            orch = await serve(config, address="127.0.0.1:0", engine=engine, env=self.env())
            self.orchestrator_address = f"127.0.0.1:{orch.port}"
            gw = await start_gateway(
                replace(
                    GatewaySettings.from_config(config),
                    orchestrator_address=self.orchestrator_address,
                    processor_address=self.processor_address,
                )
            )
            self.gateway_url = gw.url
            direct = await serve_direct(
                orch,
                replace(
                    GatewaySettings.from_config(config),
                    orchestrator_address="in-process",
                    processor_address=self.processor_address,
                ),
            )
            self.direct_url = direct.url
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(None)
        await self._stop.wait()
        await direct.stop()
        await gw.stop()
        await proc.stop(1)
        await orch.stop(1)
        await runner.cleanup()

    def stop(self) -> None:
        """Stop every service and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def chat_input(model: str, text: str = "hello there", **kw: Any) -> chat_pb2.ChatInput:
    """A one-message chat input for `model` (`kw`: more `ChatInput` fields)."""
    return chat_pb2.ChatInput(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)], **kw
    )
