"""Who may call the processor: the bind rule at start-up, API keys, and unknown models."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmesh.services.auth import open_key_store
from llmesh.services.common.config import Config, load_config, with_overrides
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.exposure import ExposureError
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.common.step_settings import parse_steps
from llmesh.services.core.chat import Message, Role
from llmesh.services.orchestrator.steps import ProcessorClient
from llmesh.services.processor.server import ProcessorServer, access_for, serve
from llmesh.services.processor.tokenizers import Tokenizers
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc

COUNT = processor_pb2.CountTokensRequest(model="openai/gpt-4o", text="hello world")
FIT = processor_pb2.FitContextRequest(
    model="openai/gpt-4o",
    messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")],
    max_tokens=100,
)


def _config(tmp_path: Path, **changes: object) -> Config:
    return with_overrides(
        load_config(None, env={}), database_url=f"sqlite:///{tmp_path}/keys.db", **changes
    )


async def _create_key(config: Config) -> str:
    store = await open_key_store(config.database_url)
    try:
        _, key = await store.create("acme")
    finally:
        await store.aclose()
    return key


async def _started(config: Config, tokenizers: Tokenizers) -> ProcessorServer:
    return await serve("127.0.0.1:0", config=config, tokenizers=tokenizers)


@pytest.fixture
async def keyed(tmp_path: Path, tokenizers: Tokenizers) -> AsyncIterator[tuple[str, str]]:
    """A processor whose key store holds one key: its address and the key."""
    config = _config(tmp_path)
    key = await _create_key(config)
    server = await _started(config, tokenizers)
    yield f"127.0.0.1:{server.port}", key
    await server.stop(None)


async def test_no_keys_and_a_network_bind_is_refused_before_binding(tmp_path: Path) -> None:
    with pytest.raises(ExposureError, match=r"^processor: refusing to listen on 0\.0\.0\.0:0 "):
        await serve("0.0.0.0:0", config=_config(tmp_path))


async def test_no_configuration_means_loopback_only() -> None:
    with pytest.raises(ExposureError, match="allow-unauthenticated"):
        await serve("0.0.0.0:0")


async def test_the_override_is_logged_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, allow_unauthenticated=True)
    with caplog.at_level(logging.WARNING):
        access = await access_for("0.0.0.0:50052", config)
    assert not access.authenticator.required
    assert "processor listens on 0.0.0.0:50052 WITHOUT AUTHENTICATION" in caplog.text


async def test_keys_allow_a_network_bind_and_are_required(tmp_path: Path) -> None:
    config = _config(tmp_path)
    await _create_key(config)
    access = await access_for("0.0.0.0:50052", config)
    try:
        assert access.authenticator.required
    finally:
        await access.aclose()


USER = chat_pb2.Message(role=chat_pb2.ROLE_USER, content="mail a@example.com")
REQUESTS: dict[str, Any] = {
    "CountTokens": COUNT,
    "FitContext": FIT,
    "Redact": processor_pb2.RedactRequest(messages=[USER]),
    "Restore": processor_pb2.RestoreRequest(
        text="<EMAIL_1>", pseudonyms=[processor_pb2.Pseudonym(placeholder="<EMAIL_1>", value="a")]
    ),
    "Screen": processor_pb2.ScreenRequest(messages=[USER]),
}


@pytest.mark.parametrize("method", list(REQUESTS))
async def test_with_keys_a_call_needs_one(keyed: tuple[str, str], method: str) -> None:
    address, key = keyed
    request = REQUESTS[method]
    async with grpc.aio.insecure_channel(address) as ch:
        call = getattr(processor_pb2_grpc.ProcessorServiceStub(ch), method)
        for metadata in ((), (("authorization", "Bearer llm_nope_nope"),)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, metadata=metadata, timeout=5)
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert from_rpc_error(info.value).reason is Reason.UNAUTHENTICATED
        reply = await call(request, metadata=(("authorization", f"Bearer {key}"),), timeout=5)
        assert reply.ByteSize() > 0


async def test_unknown_provider_is_not_found_as_in_chat(
    tmp_path: Path, tokenizers: Tokenizers
) -> None:
    server = await _started(_config(tmp_path), tokenizers)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = processor_pb2_grpc.ProcessorServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.CountTokens(
                    processor_pb2.CountTokensRequest(model="nope/x", text="hi"), timeout=5
                )
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            err = from_rpc_error(info.value)
            assert err.reason is Reason.MODEL_NOT_FOUND
            assert "unknown provider 'nope'" in err.message
            reply = await stub.CountTokens(
                processor_pb2.CountTokensRequest(model="openai/some-new-model", text="hi"),
                timeout=5,
            )
            assert reply.tokenizer == "estimate"
    finally:
        await server.stop(None)


def test_python_dash_m_processor_refuses_a_network_bind(tmp_path: Path) -> None:
    (tmp_path / "llmesh.yaml").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "llmesh.services.processor", "--address", "0.0.0.0:0"],
        env={
            **os.environ,
            "LLMESH_CONFIG": str(tmp_path / "llmesh.yaml"),
            "LLMESH_DATABASE_URL": f"sqlite:///{tmp_path}/keys.db",
            "LLMESH_LOG_LEVEL": "WARNING",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(
        "python -m llmesh.services.processor: processor: refusing to listen on 0.0.0.0:0"
    )


async def test_the_orchestrators_steps_client_presents_its_key(keyed: tuple[str, str]) -> None:
    address, key = keyed
    steps = parse_steps("r", {"pre": ["redact"]})
    assert steps is not None
    messages = (Message(Role.USER, "a@example.com"),)
    anonymous = ProcessorClient(address)
    with pytest.raises(LlmeshError) as info:
        await anonymous.prepare(messages, steps, 5)
    assert info.value.reason is Reason.UNAUTHENTICATED
    keyed_client = ProcessorClient(address, api_key=key)
    prepared = await keyed_client.prepare(messages, steps, 5)
    assert prepared.messages[0].content == "<EMAIL_1>"
    await anonymous.aclose()
    await keyed_client.aclose()
