"""Template versions, weights and statistics between the domain and `llmesh.v1` protos."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2

from llmesh.services.templates.model import (
    Parameters,
    TemplateMessage,
    TemplateVersion,
    Variable,
    version_from_mapping,
)
from llmesh.services.templates.stats import VersionStats
from llmesh.v1 import chat_pb2, templates_pb2

__all__ = [
    "parameters_from_proto",
    "parameters_to_proto",
    "stats_to_proto",
    "struct_to_dict",
    "version_from_proto",
    "version_to_proto",
    "weights_from_proto",
    "weights_to_proto",
]

_ROLES = {"system": chat_pb2.ROLE_SYSTEM, "user": chat_pb2.ROLE_USER}
_ROLES["assistant"] = chat_pb2.ROLE_ASSISTANT
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain Python values (whole numbers become ints)."""
    return _ints(json_format.MessageToDict(value))  # type: ignore[no-any-return]


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def parameters_to_proto(p: Parameters) -> templates_pb2.TemplateParameters:
    """`p` as its proto (unset stays unset)."""
    out = templates_pb2.TemplateParameters(stop=p.stop)
    for name in ("temperature", "top_p", "max_tokens", "seed"):
        if getattr(p, name) is not None:
            setattr(out, name, getattr(p, name))
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(p, name) is not None:
            setattr(out, name, getattr(p, name))
    return out


def parameters_from_proto(p: templates_pb2.TemplateParameters) -> Parameters:
    """The parameters a proto sets."""

    def opt(name: str) -> Any:
        return getattr(p, name) if p.HasField(name) else None

    return Parameters(
        temperature=opt("temperature"),
        top_p=opt("top_p"),
        max_tokens=opt("max_tokens"),
        stop=tuple(p.stop),
        seed=opt("seed"),
        presence_penalty=opt("presence_penalty"),
        frequency_penalty=opt("frequency_penalty"),
    )


def version_to_proto(v: TemplateVersion) -> templates_pb2.TemplateVersion:
    """`v` as its proto."""
    out = templates_pb2.TemplateVersion(
        name=v.name,
        version=v.version,
        description=v.description,
        system=v.system,
        messages=[
            templates_pb2.TemplateMessage(role=_ROLES[m.role], content=m.content)
            for m in v.messages
        ],
        parameters=parameters_to_proto(v.parameters),
    )
    for var in v.variables:
        pv = out.variables.add(name=var.name, required=var.required, description=var.description)
        if not var.required:
            json_format.ParseDict(var.default, pv.default_value)
    if v.created_at:
        out.created_at.FromNanoseconds(int(v.created_at * 1e9))
    return out


def version_from_proto(
    p: templates_pb2.TemplateVersion, *, trusted: bool = False
) -> TemplateVersion:
    """The version a proto carries. A caller's proto (`trusted` False) is validated as a
    file would be (INVALID_REQUEST naming each bad field); the orchestrator's own (to
    render) is taken as is."""
    if trusted:
        return TemplateVersion(
            p.name,
            p.version,
            p.description,
            tuple(
                Variable(
                    v.name,
                    v.required,
                    None if v.required else _ints(json_format.MessageToDict(v.default_value)),
                    v.description,
                )
                for v in p.variables
            ),
            p.system,
            tuple(TemplateMessage(_ROLE_NAMES.get(m.role, "user"), m.content) for m in p.messages),
            parameters_from_proto(p.parameters),
            p.created_at.ToNanoseconds() / 1e9,
        )
    variables: dict[str, Any] = {}
    for v in p.variables:
        spec: dict[str, Any] = {"required": v.required, "description": v.description}
        if v.HasField("default_value"):
            spec["default"] = _ints(json_format.MessageToDict(v.default_value))
        variables[v.name] = spec
    params = parameters_from_proto(p.parameters)
    raw: dict[str, Any] = {
        "description": p.description,
        "variables": variables,
        "system": p.system,
        "messages": [
            {"role": _ROLE_NAMES.get(m.role, f"role {m.role}"), "content": m.content}
            for m in p.messages
        ],
        "parameters": {
            k: getattr(params, k)
            for k in Parameters.__dataclass_fields__
            if getattr(params, k) not in (None, ())
        }
        | ({"stop": list(params.stop)} if params.stop else {}),
    }
    return version_from_mapping(raw, p.name)


def weights_to_proto(weights: Sequence[tuple[int, float]]) -> list[templates_pb2.TemplateWeight]:
    """(version, weight) pairs as protos."""
    return [templates_pb2.TemplateWeight(version=v, weight=w) for v, w in weights]


def weights_from_proto(
    weights: Sequence[templates_pb2.TemplateWeight],
) -> list[tuple[int, float]]:
    """Proto weights as (version, weight) pairs (validated by the store)."""
    return [(w.version, w.weight) for w in weights]


def stats_to_proto(s: VersionStats) -> templates_pb2.TemplateVersionStats:
    """One version's statistics as its proto."""
    return templates_pb2.TemplateVersionStats(
        version=s.version,
        calls=s.calls,
        errors=s.errors,
        input_tokens=s.input_tokens,
        output_tokens=s.output_tokens,
        cost_usd=s.cost_usd,
        latency_p50_ms=s.latency_p50_ms,
        latency_mean_ms=s.latency_mean_ms,
        ttft_p50_ms=s.ttft_p50_ms,
        ttft_mean_ms=s.ttft_mean_ms,
    )
