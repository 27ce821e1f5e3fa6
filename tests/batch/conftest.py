"""Batch stores on both databases (PostgreSQL in a schema of its own per test), a fake of
the call path (a real in-memory `ItemCalls` whose replies and failures a test scripts), and
for the native clients an emulator, its admin client and providers pointed at it."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from llmesh.services.batch.backends import PostgresBackend, SqliteBackend
from llmesh.services.batch.calls import FirstTarget, ItemReply
from llmesh.services.batch.native_seam import NativeItem, NativeResult
from llmesh.services.batch.store import BatchStore
from llmesh.services.common.config import EmulatorConfig, ProviderConfig, resolve_provider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.emulator import EmulatorSettings, start
from llmesh.services.orchestrator.batch_native import NativeBatches, NativeState, NativeStatus
from llmesh.v1 import batches_pb2, chat_pb2, orchestrator_pb2
from tests.support.servers import ensure_postgres

RUN_PREFIX = f"batch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
_numbers = itertools.count(1)


async def _drop(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE $1",
            RUN_PREFIX + "%",
        )
        for row in rows:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row[0]}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def batch_postgres() -> Iterator[str]:
    url = ensure_postgres()
    yield url
    asyncio.run(_drop(url))


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BatchStore]:
    """Builds a store of each kind in turn, on one database per test."""
    if request.param == "sqlite":
        return lambda: BatchStore(SqliteBackend(tmp_path / "batch.db"))
    url = request.getfixturevalue("batch_postgres")
    schema = f"{RUN_PREFIX}_{next(_numbers)}"
    return lambda: BatchStore(PostgresBackend(url, schema=schema))


@pytest.fixture
async def store(store_factory: Callable[[], BatchStore]) -> AsyncIterator[BatchStore]:
    s = store_factory()
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[BatchStore]:
    s = BatchStore(SqliteBackend(tmp_path / "batch.db"))
    try:
        yield s
    finally:
        await s.aclose()


def chat_item(
    custom_id: str, text: str = "hi", model: str = "emulator/echo"
) -> batches_pb2.BatchItem:
    """A chat item asking `model` to answer `text`."""
    return batches_pb2.BatchItem(
        custom_id=custom_id,
        chat=chat_pb2.ChatInput(
            model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)]
        ),
    )


@dataclass
class FakeCalls:
    """`ItemCalls` answering each item with its own text, failing as `script` says.

    `script[text]` is a list of reasons: each call of an item with that text pops the first
    and fails with it, until the list is empty (then it succeeds)."""

    script: dict[str, list[Reason]] = field(default_factory=dict)
    calls: list[tuple[str, Caller]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    gate: asyncio.Event | None = None
    """When set, each call waits for it (so tests can hold items in flight)."""
    kind: str = "emulator"

    def check(self, item: batches_pb2.BatchItem) -> None:
        if item.WhichOneof("input") == "chat" and not item.chat.messages:
            raise LlmeshError(Reason.INVALID_REQUEST, "chat.messages must not be empty")

    def first_target(self, item: batches_pb2.BatchItem) -> FirstTarget:
        settings = resolve_provider(
            ProviderConfig(name=self.kind, kind=self.kind), EmulatorConfig(), {}
        )
        return FirstTarget(self.kind, self.kind, settings, "m")

    def native_item(self, item: batches_pb2.BatchItem) -> NativeItem:
        text = item.chat.messages[0].content
        request = ChatRequest(messages=(Message(Role.USER, text),))
        return NativeItem(item.custom_id, request, "m")

    async def record_native(
        self, caller: Caller, target: FirstTarget, result: NativeResult, batch_id: str
    ) -> float:
        return 0.5

    async def run(self, item: batches_pb2.BatchItem, caller: Caller, batch_id: str) -> ItemReply:
        text = item.chat.messages[0].content
        self.calls.append((item.custom_id, caller))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            failures = self.script.get(text)
            if failures:
                raise LlmeshError(failures.pop(0), f"scripted failure for {text}", retry_after=0.01)
            reply = orchestrator_pb2.ChatResponse(
                request_id=f"req-{item.custom_id}",
                message=chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content=text),
            )
            return ItemReply(chat=reply, cost_usd=0.001)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    runner, port = await start(EmulatorSettings(host="127.0.0.1", port=0))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def admin(emulator: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emulator, timeout=10) as client:
        yield client


def resolved(kind: str, base_url: str) -> ResolvedProvider:
    """A provider of `kind` named after it, at `base_url`."""
    return ResolvedProvider(ProviderConfig(kind, kind), base_url, "sk-test-key-1234", False)


Until = Callable[[NativeBatches, str, NativeState], Awaitable[NativeStatus]]


@pytest.fixture
def until() -> Until:
    """Poll a batch's status until it reaches a state (for up to ten seconds)."""

    async def poll(client: NativeBatches, batch_id: str, state: NativeState) -> NativeStatus:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            status = await client.status(batch_id)
            if status.state is state or loop.time() > deadline:
                return status
            await asyncio.sleep(0.01)

    return poll
