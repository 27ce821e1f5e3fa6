"""The processor over real gRPC: a `grpc.aio` server on 127.0.0.1:0 and a real channel."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmesh.services.common.errors import Reason
from llmesh.services.common.grpc_server import ServiceBinding, start_server
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.processor.server import SERVICE_NAME, ProcessorServer, serve
from llmesh.services.processor.servicer import ProcessorServicer
from llmesh.services.processor.tokenizers import TokenCounter, Tokenizers
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc

ROOT = Path(__file__).parents[2]


@pytest.fixture
async def server(tokenizers: Tokenizers) -> AsyncIterator[ProcessorServer]:
    running = await serve("127.0.0.1:0", tokenizers=tokenizers)
    yield running
    await running.stop(None)


@pytest.fixture
async def channel(server: ProcessorServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> processor_pb2_grpc.ProcessorServiceStub:
    return processor_pb2_grpc.ProcessorServiceStub(channel)


def msg(role: int, content: str = "", **fields: object) -> chat_pb2.Message:
    return chat_pb2.Message(role=role, content=content, **fields)  # type: ignore[arg-type]


CONVERSATION = [
    msg(chat_pb2.ROLE_SYSTEM, "You are terse."),
    msg(chat_pb2.ROLE_USER, "Tell me all about the printing press, in great detail please."),
    msg(
        chat_pb2.ROLE_ASSISTANT,
        tool_calls=[chat_pb2.ToolCall(id="c1", name="search", arguments='{"q": "press"}')],
    ),
    msg(chat_pb2.ROLE_TOOL, "Gutenberg, c. 1440, movable type.", tool_call_id="c1"),
    msg(chat_pb2.ROLE_ASSISTANT, "Gutenberg built it around 1440."),
    msg(chat_pb2.ROLE_USER, "And paper?", name="ann"),
]


async def test_count_text(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    r = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model="openai/gpt-4o-mini", text="hello world")
    )
    assert (r.tokens, r.tokenizer, r.exact) == (2, "o200k_base", True)
    r = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model="gpt-4", text="Hello, world!")
    )
    assert (r.tokens, r.tokenizer, r.exact) == (4, "cl100k_base", True)


async def test_count_estimate(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    r = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model="anthropic/claude-sonnet-4-5", text="x" * 10)
    )
    assert (r.tokens, r.tokenizer, r.exact) == (3, "estimate", False)


async def test_count_nothing_is_zero(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    r = await stub.CountTokens(processor_pb2.CountTokensRequest(model="openai/gpt-4o"))
    assert (r.tokens, r.tokenizer, r.exact) == (0, "o200k_base", True)


async def test_count_messages_ignores_text(
    stub: processor_pb2_grpc.ProcessorServiceStub, tokenizers: Tokenizers
) -> None:
    r = await stub.CountTokens(
        processor_pb2.CountTokensRequest(
            model="openai/gpt-4o", text="ignored", messages=CONVERSATION
        )
    )
    expected = _local_count(tokenizers.for_model("openai/gpt-4o"), CONVERSATION)
    assert (r.tokens, r.tokenizer, r.exact) == (expected, "o200k_base", True)


def _local_count(counter: TokenCounter, messages: list[chat_pb2.Message]) -> int:
    from llmesh.services.processor.convert import count_request_from_proto

    req = count_request_from_proto(processor_pb2.CountTokensRequest(model="m", messages=messages))
    return counter.conversation_tokens(req.messages)


async def test_fit_context(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    model = "openai/gpt-4o"
    whole = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model=model, messages=CONVERSATION)
    )
    everything = await stub.FitContext(
        processor_pb2.FitContextRequest(model=model, messages=CONVERSATION, max_tokens=10_000)
    )
    assert list(everything.messages) == CONVERSATION
    assert everything.tokens == whole.tokens
    assert (everything.dropped_tokens, list(everything.dropped_indices)) == (0, [])

    # Room for the system prompt and the last two messages, not for the tool result.
    last_two = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model=model, messages=[CONVERSATION[0], *CONVERSATION[4:]])
    )
    r = await stub.FitContext(
        processor_pb2.FitContextRequest(
            model=model, messages=CONVERSATION, max_tokens=last_two.tokens + 1
        )
    )
    assert list(r.messages) == [CONVERSATION[0], *CONVERSATION[4:]]
    assert list(r.dropped_indices) == [1, 2, 3]
    assert r.tokens == last_two.tokens
    assert r.tokens + r.dropped_tokens == whole.tokens
    assert (r.tokenizer, r.exact) == ("o200k_base", True)


async def test_fit_context_too_long(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.FitContext(
            processor_pb2.FitContextRequest(
                model="openai/gpt-4o", messages=CONVERSATION, max_tokens=5
            )
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.CONTEXT_TOO_LONG
    assert err.metadata["max_tokens"] == "5"


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (processor_pb2.CountTokensRequest(model=" ", text="x"), ["model"]),
        (
            processor_pb2.CountTokensRequest(
                model="gpt-4o", messages=[msg(chat_pb2.ROLE_USER, "a"), msg(0, "b")]
            ),
            ["messages[1].role"],
        ),
        (
            processor_pb2.FitContextRequest(
                model="gpt-4o", messages=[msg(chat_pb2.ROLE_USER, "a")], max_tokens=0
            ),
            ["max_tokens"],
        ),
        (processor_pb2.FitContextRequest(model="gpt-4o", max_tokens=10), ["messages"]),
        (
            processor_pb2.FitContextRequest(messages=[msg(99, "a")], max_tokens=-1),
            ["model", "messages[0].role", "max_tokens"],
        ),
    ],
)
async def test_bad_requests_name_their_fields(
    stub: processor_pb2_grpc.ProcessorServiceStub, request_: object, fields: list[str]
) -> None:
    method = (
        stub.CountTokens
        if isinstance(request_, processor_pb2.CountTokensRequest)
        else stub.FitContext
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await method(request_)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert [v.field for v in err.violations] == fields
    # The server keeps serving.
    r = await stub.CountTokens(processor_pb2.CountTokensRequest(model="gpt-4o", text="hi"))
    assert r.tokens == 1


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in (SERVICE_NAME, ""):
        r = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


class Exploding(Tokenizers):
    """Tokenizers with a bug for one model."""

    def for_model(self, model: str) -> TokenCounter:
        if model == "boom":
            raise RuntimeError("secret detail")
        return super().for_model(model)


async def test_a_bug_becomes_internal_and_the_server_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = await start_server(
        [
            ServiceBinding(
                processor_pb2_grpc.add_ProcessorServiceServicer_to_server,
                ProcessorServicer(Exploding()),
                SERVICE_NAME,
            )
        ],
        "127.0.0.1:0",
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = processor_pb2_grpc.ProcessorServiceStub(ch)
            for call in (
                stub.CountTokens(processor_pb2.CountTokensRequest(model="boom", text="x")),
                stub.FitContext(
                    processor_pb2.FitContextRequest(
                        model="boom", messages=[msg(chat_pb2.ROLE_USER, "x")], max_tokens=9
                    )
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call
                assert info.value.code() is grpc.StatusCode.INTERNAL
                assert "secret" not in (info.value.details() or "")
                assert from_rpc_error(info.value).reason is Reason.INTERNAL
            r = await stub.CountTokens(
                processor_pb2.CountTokensRequest(model="emulator/echo", text="abcd")
            )
            assert r.tokens == 1
    finally:
        await running.server.stop(None)
    assert "CountTokens failed" in caplog.text
    assert "FitContext failed" in caplog.text


async def test_module_runs_until_sigterm(tmp_path: Path) -> None:
    (tmp_path / "none.yaml").write_text("")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmesh.services.processor",
        "--address",
        "127.0.0.1:0",
        cwd=ROOT,
        env={
            **os.environ,
            "LLMESH_LOG_LEVEL": "WARNING",
            "LLMESH_CONFIG": str(tmp_path / "none.yaml"),
            "LLMESH_DATABASE_URL": f"sqlite:///{tmp_path}/llmesh.db",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("processor listening on 127.0.0.1:"), line
        address = line.split()[-1]
        async with grpc.aio.insecure_channel(address) as ch:
            stub = processor_pb2_grpc.ProcessorServiceStub(ch)
            r = await stub.CountTokens(
                processor_pb2.CountTokensRequest(model="gpt-4o", text="hello world")
            )
            assert r.tokens == 2
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_content_parts_are_counted(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    from llmesh.services.core.media_tokens import DOCUMENT_BYTES_PER_TOKEN, IMAGE_TOKENS

    model = "openai/gpt-4o"
    plain = chat_pb2.Message(role=chat_pb2.ROLE_USER, content="what is this picture")
    as_parts = chat_pb2.Message(
        role=chat_pb2.ROLE_USER, parts=[chat_pb2.ContentPart(text="what is this picture")]
    )
    with_image = chat_pb2.Message(
        role=chat_pb2.ROLE_USER,
        parts=[
            chat_pb2.ContentPart(text="what is this picture"),
            chat_pb2.ContentPart(image=chat_pb2.ImagePart(data=b"png", media_type="image/png")),
            chat_pb2.ContentPart(
                document=chat_pb2.DocumentPart(data=b"x" * 500, media_type="application/pdf")
            ),
        ],
    )

    async def count(message: chat_pb2.Message) -> int:
        r = await stub.CountTokens(
            processor_pb2.CountTokensRequest(model=model, messages=[message])
        )
        return r.tokens

    text = await count(plain)
    assert await count(as_parts) == text  # a text part counts as its text
    media = IMAGE_TOKENS + IMAGE_TOKENS + 500 // DOCUMENT_BYTES_PER_TOKEN
    assert await count(with_image) == text + media
    with pytest.raises(grpc.aio.AioRpcError) as info:  # fitting counts the media too
        await stub.FitContext(
            processor_pb2.FitContextRequest(
                model=model, messages=[with_image], max_tokens=text + 10
            )
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"needs {text + media} tokens" in (info.value.details() or "")
