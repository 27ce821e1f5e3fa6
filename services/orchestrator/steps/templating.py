"""A call naming a template: the version it renders (pinned, by weights, or the latest) and
the version's default parameters applied where the call set none.

A version never changes once stored (the stores have no update or delete), so a pinned one
(``name@version``) is read from the store once and kept, in its wire form, beside its
defaults (`Templates`); ``name`` alone asks the store on every call, since a new version or
new weights may change the answer at any time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any

from google.protobuf import struct_pb2

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall, TemplateUse
from llmesh.services.core.chat import ChatRequest
from llmesh.services.templates import Parameters, TemplateRef, TemplateStore, resolve
from llmesh.services.templates.convert import version_to_proto
from llmesh.v1 import processor_pb2, templates_pb2

__all__ = ["Templates", "with_defaults"]

_Kept = tuple[str, int, templates_pb2.TemplateVersion, Parameters]


class Templates:
    """Picks the version a call renders; keeps the last `kept` pinned versions read."""

    def __init__(self, store: TemplateStore | None, kept: int = 256) -> None:
        """`store`: where the templates are (None: a call naming one fails)."""
        self._store = store
        self._kept = kept
        self._pinned: OrderedDict[tuple[str, int], _Kept] = OrderedDict()

    async def _version(self, use: TemplateUse, tenant: str, user: str) -> _Kept:
        if self._store is None:
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED, "templates are not available on this orchestrator"
            )
        key = (use.name, use.version) if use.version is not None else None
        if key is not None:
            kept = self._pinned.get(key)
            if kept is not None:
                self._pinned.move_to_end(key)
                return kept
        version = await resolve(self._store, TemplateRef(use.name, use.version), tenant, user)
        kept = (version.name, version.version, version_to_proto(version), version.parameters)
        if key is not None:
            self._pinned[key] = kept
            if len(self._pinned) > self._kept:
                self._pinned.popitem(last=False)
        return kept

    async def render(
        self, call: RoutedCall[ChatRequest], use: TemplateUse
    ) -> tuple[processor_pb2.TemplateRender, Parameters]:
        """The version the call renders (noted in the trail) with its variables, and the
        version's default parameters."""
        user = call.call.metadata.get("user", "")
        name, number, proto, parameters = await self._version(use, call.caller.tenant, user)
        call.trail.template = (name, number)
        variables = struct_pb2.Struct()
        variables.update(dict(use.variables))
        return processor_pb2.TemplateRender(template=proto, variables=variables), parameters


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
