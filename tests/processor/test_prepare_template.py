"""Templates in the processor: ``RenderTemplate`` on its own, and a template rendered first
in ``Prepare``, with the route's steps running on the result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.processor.server import ProcessorServer, serve
from llmesh.services.processor.tokenizers import Tokenizers
from llmesh.services.templates import version_from_mapping
from llmesh.services.templates.convert import version_to_proto
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc
from llmesh.v1.templates_pb2 import TemplateVersion


@pytest.fixture
async def stub(tokenizers: Tokenizers) -> AsyncIterator[processor_pb2_grpc.ProcessorServiceStub]:
    running: ProcessorServer = await serve("127.0.0.1:0", tokenizers=tokenizers)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield processor_pb2_grpc.ProcessorServiceStub(ch)
    await running.stop(None)


def _version() -> TemplateVersion:
    version = version_from_mapping(
        {
            "name": "mail",
            "variables": {"to": None, "sign": {"default": "Bo"}, "n": {"default": 3}},
            "system": "Write to {{ to }} ({{ n }}).",
            "messages": [{"role": "user", "content": "Sign as {{ sign }}."}],
            "parameters": {"temperature": 0.3, "max_tokens": 64},
        }
    )
    out = version_to_proto(version)
    out.version = 2
    return out


def _render(**variables: object) -> processor_pb2.TemplateRender:
    values = struct_pb2.Struct()
    values.update(variables)
    return processor_pb2.TemplateRender(template=_version(), variables=values)


async def test_render_template(stub: processor_pb2_grpc.ProcessorServiceStub) -> None:
    request = processor_pb2.RenderTemplateRequest(render=_render(to="jane@example.com"))
    answer = await stub.RenderTemplate(request, timeout=10)
    assert [(m.role, m.content) for m in answer.messages] == [
        (chat_pb2.ROLE_SYSTEM, "Write to jane@example.com (3)."),
        (chat_pb2.ROLE_USER, "Sign as Bo."),
    ]
    assert (answer.parameters.temperature, answer.parameters.max_tokens) == (0.3, 64)
    assert not answer.parameters.HasField("top_p")


async def test_prepare_renders_first_and_redacts_the_result(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    request = processor_pb2.PrepareRequest(
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="and cc a@b.org")],
        steps=["redact"],
        redaction=processor_pb2.RedactionRules(
            mode=processor_pb2.REDACTION_MODE_MASK, detectors=["email"]
        ),
        template=_render(to="jane@example.com", sign="Al"),
    )
    answer = await stub.Prepare(request, timeout=10)
    assert [m.content for m in answer.messages] == [
        "Write to [EMAIL] (3).",
        "Sign as Al.",
        "and cc [EMAIL]",
    ]
    assert [(d.step, d.decision) for d in answer.decisions] == [
        ("template", "mail@2"),
        ("redact", "mask"),
    ]
    assert answer.parameters.temperature == 0.3


@pytest.mark.parametrize(
    ("variables", "fields"),
    [
        ({}, ["template_variables.to"]),
        ({"to": "x", "cc": "y"}, ["template_variables.cc"]),
    ],
)
async def test_variables_are_checked(
    stub: processor_pb2_grpc.ProcessorServiceStub,
    variables: dict[str, object],
    fields: list[str],
) -> None:
    request = processor_pb2.PrepareRequest(template=_render(**variables))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Prepare(request, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(caught.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert [v.field for v in err.violations] == fields


async def test_a_sandbox_escape_is_invalid_argument(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    render = _render(to="x")
    render.template.system = "{{ to.__class__.__mro__ }}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RenderTemplate(processor_pb2.RenderTemplateRequest(render=render), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "sandbox" in (caught.value.details() or "")


def test_a_version_is_read_from_its_proto_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmesh.services.common.media_settings import PartLimits
    from llmesh.services.processor import prepare

    read: list[str] = []
    original = prepare.version_from_proto

    def counted(p: TemplateVersion, *, trusted: bool = False) -> object:
        read.append(p.name)
        return original(p, trusted=trusted)

    monkeypatch.setattr(prepare, "version_from_proto", counted)
    preparer = prepare.Preparer(PartLimits())
    first, parameters = preparer.render(_render(to="a"))
    again, _ = preparer.render(_render(to="b", sign="Al"))
    assert [m.content for m in first] == ["Write to a (3).", "Sign as Bo."]
    assert [m.content for m in again] == ["Write to b (3).", "Sign as Al."]
    assert (parameters.temperature, parameters.max_tokens) == (0.3, 64)
    assert read == ["mail"]  # the same bytes: the same version
    other = _render(to="c")
    other.template.system = "Hi {{ to }}."
    assert [m.content for m in preparer.render(other)[0]] == ["Hi c.", "Sign as Bo."]
    assert read == ["mail", "mail"]
