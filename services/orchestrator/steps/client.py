"""The orchestrator's channel to the processor, for a route's pre-call steps.

Only the texts travel (role, content, text parts, tool calls, tool results): images,
documents, audio and thinking blocks stay in the orchestrator, and the answer's texts are
put back in place, in order. A processor that cannot be reached fails the call
(SERVICE_UNREACHABLE, naming its address): a call is never sent unredacted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import grpc

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.rpc_errors import Peer, from_rpc_error
from llmesh.services.common.step_proto import (
    output_rules_to_proto,
    rules_from_proto,
    rules_to_proto,
    screening_to_proto,
)
from llmesh.services.common.step_settings import RedactionConfig, StepsConfig
from llmesh.services.common.tls import channel
from llmesh.services.common.tls_settings import TlsSettings
from llmesh.services.core.chat import Message, Role, TextPart
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc, templates_pb2

__all__ = ["Prepared", "ProcessorClient", "messages_to_proto", "with_texts"]

_ROLES = {
    Role.SYSTEM: chat_pb2.ROLE_SYSTEM,
    Role.USER: chat_pb2.ROLE_USER,
    Role.ASSISTANT: chat_pb2.ROLE_ASSISTANT,
    Role.TOOL: chat_pb2.ROLE_TOOL,
}
_FROM_PROTO = {v: k for k, v in _ROLES.items()}

POINT_AT = "processor.address in the configuration file or LLMESH_PROCESSOR_ADDRESS"


@dataclass(frozen=True, slots=True)
class Prepared:
    """The processor's answer: the messages to send and what the reply needs."""

    messages: tuple[Message, ...]
    pseudonyms: dict[str, str]
    """Placeholder -> value, to restore in the reply."""
    decisions: tuple[processor_pb2.StepDecision, ...]
    moved_to: str = ""
    """``provider/model`` the fit step moved the call to; empty when it stays."""
    summarize: tuple[int, ...] = ()
    """The indices (in `messages`) of the middle turns the fit step's summarize strategy
    asks to replace with a summary; empty otherwise."""
    output: RedactionConfig | None = None
    """The output rules the processor answered (``post: [redact_output]``): what the
    reply's text and tool-call arguments get masked for."""
    parameters: templates_pb2.TemplateParameters | None = None
    """The rendered template's default parameters; None without a template."""


def messages_to_proto(messages: Sequence[Message]) -> list[chat_pb2.Message]:
    """The text view of `messages` sent to the processor."""
    out = []
    for m in messages:
        pm = chat_pb2.Message(
            role=_ROLES[m.role], content=m.content, tool_call_id=m.tool_call_id, name=m.name
        )
        for p in m.parts:
            if isinstance(p, TextPart):
                pm.parts.add(text=p.text)
        for c in m.tool_calls:
            pm.tool_calls.add(id=c.id, name=c.name, arguments=c.arguments)
        out.append(pm)
    return out


def with_texts(
    messages: Sequence[Message], answered: Sequence[chat_pb2.Message]
) -> tuple[Message, ...]:
    """`messages` with the texts of the processor's answer, in place."""
    out = []
    for m, pm in zip(messages, answered, strict=True):
        texts = iter(pm.parts)
        parts = tuple(
            replace(p, text=next(texts).text) if isinstance(p, TextPart) else p for p in m.parts
        )
        calls = tuple(
            replace(c, arguments=pc.arguments)
            for c, pc in zip(m.tool_calls, pm.tool_calls, strict=True)
        )
        out.append(replace(m, content=pm.content, parts=parts, tool_calls=calls))
    return tuple(out)


class ProcessorClient:
    """Calls the processor's ``Prepare`` over gRPC."""

    def __init__(
        self, address: str, tls: TlsSettings | None = None, api_key: str | None = None
    ) -> None:
        """`api_key`: the llmesh API key presented to a processor whose key store has keys."""
        self.address = address
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self._channel = channel(address, tls, "orchestrator")
        self._stub = processor_pb2_grpc.ProcessorServiceStub(self._channel)
        self._peer = Peer("processor", address, POINT_AT)

    async def prepare(
        self,
        messages: Sequence[Message],
        steps: StepsConfig,
        timeout: float | None,
        fit: processor_pb2.FitRules | None = None,
        template: processor_pb2.TemplateRender | None = None,
    ) -> Prepared:
        """The messages through the route's pre-call steps (`fit`: the fit step's rules and
        the target's limits), after the `template`'s rendered messages when there is one;
        raises `LlmeshError`."""
        request = processor_pb2.PrepareRequest(
            messages=messages_to_proto(messages),
            steps=steps.pre,
            redaction=rules_to_proto(steps.redact),
            screening=screening_to_proto(steps.screen),
            fit=fit,
            template=template,
        )
        if steps.masks_output:
            request.output_redaction.CopyFrom(output_rules_to_proto(steps.redact_output))
        try:
            answer = await self._stub.Prepare(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self._peer) from None
        output = None
        if steps.masks_output:
            if not answer.HasField("output_redaction"):
                raise LlmeshError(
                    Reason.INTERNAL,
                    f"the processor at {self.address} answered no output rules for a route "
                    "with post: [redact_output]; is it older than the orchestrator?",
                )
            output = rules_from_proto(answer.output_redaction, "output_redaction", streamed=True)
        # the rendered messages come first; they exist here only as the answer's texts
        rendered = len(answer.messages) + len(answer.dropped_indices) - len(messages)
        full: list[Message | None] = [*([None] * max(rendered, 0)), *messages]
        dropped = set(answer.dropped_indices)
        kept = [m for i, m in enumerate(full) if i not in dropped]
        out = [
            Message(_FROM_PROTO.get(pm.role, Role.USER), pm.content)
            if m is None
            else with_texts([m], [pm])[0]
            for m, pm in zip(kept, answer.messages, strict=True)
        ]
        return Prepared(
            tuple(out),
            {p.placeholder: p.value for p in answer.pseudonyms},
            tuple(answer.decisions),
            answer.moved_to,
            tuple(answer.summarize.indices),
            output,
            answer.parameters if template is not None else None,
        )

    async def aclose(self) -> None:
        """Close the channel."""
        await self._channel.close()
