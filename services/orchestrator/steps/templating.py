"""A call naming a template: the version it renders (pinned, by weights, or the latest) and
the version's default parameters applied where the call set none."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.protobuf import struct_pb2

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall, TemplateUse
from llmesh.services.core.chat import ChatRequest
from llmesh.services.templates import Parameters, TemplateRef, TemplateStore, resolve
from llmesh.services.templates.convert import version_to_proto
from llmesh.v1 import processor_pb2

__all__ = ["render", "with_defaults"]


async def render(
    templates: TemplateStore | None, call: RoutedCall[ChatRequest], use: TemplateUse
) -> tuple[processor_pb2.TemplateRender, Parameters]:
    """The version the call renders (noted in the trail) with its variables, and the
    version's default parameters."""
    if templates is None:
        raise LlmeshError(
            Reason.PROVIDER_NOT_CONFIGURED, "templates are not available on this orchestrator"
        )
    user = call.call.metadata.get("user", "")
    version = await resolve(templates, TemplateRef(use.name, use.version), call.caller.tenant, user)
    call.trail.template = (version.name, version.version)
    variables = struct_pb2.Struct()
    variables.update(dict(use.variables))
    rendered = processor_pb2.TemplateRender(template=version_to_proto(version), variables=variables)
    return rendered, version.parameters


def with_defaults(request: ChatRequest, defaults: Parameters) -> ChatRequest:
    """`request` with a template's default parameters where the call set none."""
    changes: dict[str, Any] = {
        name: getattr(defaults, name)
        for name in (
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "presence_penalty",
            "frequency_penalty",
        )
        if getattr(request, name) is None and getattr(defaults, name) is not None
    }
    if not request.stop and defaults.stop:
        changes["stop"] = defaults.stop
    return replace(request, **changes) if changes else request
