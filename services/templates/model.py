"""A prompt template's versions as data: declared variables, an optional system prompt,
messages (Jinja2 texts; few-shot turns are messages too) and default parameters.

The same shape is read from a YAML or JSON file (`version_from_mapping`), stored in the
ledger database and carried in `llmesh.v1.TemplateVersion`::

    description: support answers, shorter
    variables:
      product: {required: true, description: the product asked about}
      tone: {default: friendly}
    system: You answer questions about {{ product }} in a {{ tone }} tone.
    messages:
      - {role: user, content: "How do I reset {{ product }}?"}
      - {role: assistant, content: "Hold the power button for ten seconds."}
      - {role: user, content: "{{ question }}"}
    parameters: {temperature: 0.2, max_tokens: 300}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason

__all__ = [
    "NAME",
    "ROLES",
    "Parameters",
    "TemplateMessage",
    "TemplateRef",
    "TemplateVersion",
    "Variable",
    "invalid",
    "not_found",
    "parse_ref",
    "version_from_mapping",
    "version_to_mapping",
]

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A template's name."""
ROLES = ("system", "user", "assistant")
"""The roles a template's messages may have."""
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Variable:
    """A variable a version declares."""

    name: str
    """As the template's texts use it."""
    required: bool = True
    """True: a call must give it; False: `default` stands in."""
    default: Any = None
    """The value used when a call does not give the variable (JSON: text, number, list...)."""
    description: str = ""
    """What it is for."""


@dataclass(frozen=True)
class TemplateMessage:
    """One message of a template."""

    role: str
    """Of `ROLES`."""
    content: str
    """A Jinja2 template."""


@dataclass(frozen=True)
class Parameters:
    """Default sampling parameters, applied only where the call sets none."""

    temperature: float | None = None
    """Sampling temperature, 0 to 2."""
    top_p: float | None = None
    """Nucleus sampling mass, 0 to 1."""
    max_tokens: int | None = None
    """The most output tokens."""
    stop: tuple[str, ...] = ()
    """Sequences that end generation."""
    seed: int | None = None
    """A seed for deterministic sampling."""
    presence_penalty: float | None = None
    """-2 to 2."""
    frequency_penalty: float | None = None
    """-2 to 2."""


@dataclass(frozen=True)
class TemplateVersion:
    """One immutable version of a template."""

    name: str
    """The template's name (`NAME`)."""
    version: int = 0
    """From 1; 0 until the store gives it one."""
    description: str = ""
    """What the version is or changes."""
    variables: tuple[Variable, ...] = ()
    """The declared variables, in order."""
    system: str = ""
    """An optional system prompt (Jinja2), sent first."""
    messages: tuple[TemplateMessage, ...] = ()
    """Instructions and few-shot turns (Jinja2), in order."""
    parameters: Parameters = field(default_factory=Parameters)
    """Default sampling parameters."""
    created_at: float = 0.0
    """Unix seconds; set by the store."""

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class TemplateRef:
    """What a call names: a template, and a version or none (the weights pick)."""

    name: str
    version: int | None = None


def invalid(violations: list[FieldViolation]) -> LlmeshError:
    """INVALID_REQUEST naming each bad field."""
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return LlmeshError(
        Reason.INVALID_REQUEST, f"invalid template: {summary}", violations=tuple(violations)
    )


def not_found(name: str, version: int | None = None) -> LlmeshError:
    """TEMPLATE_NOT_FOUND for a template, or one of its versions."""
    what = f"template {name!r} has no version {version}" if version else f"no template {name!r}"
    meta = {"template": name} | ({"version": str(version)} if version else {})
    return LlmeshError(Reason.TEMPLATE_NOT_FOUND, what, metadata=meta)


def parse_ref(text: str, where: str = "template") -> TemplateRef:
    """``name`` or ``name@version``; INVALID_REQUEST naming `where` otherwise."""
    name, at, number = text.strip().partition("@")
    version: int | None = None
    if at:
        version = int(number) if number.isdigit() and int(number) > 0 else 0
    if not NAME.fullmatch(name) or version == 0:
        raise invalid([FieldViolation(where, f"{text!r} is not a template name or name@version")])
    return TemplateRef(name, version)


def _number(
    bad: list[FieldViolation], where: str, raw: Any, low: float, high: float, integer: bool = False
) -> Any:
    if raw is None:
        return None
    ok = isinstance(raw, int) if integer else isinstance(raw, int | float)
    if isinstance(raw, bool) or not ok or not math.isfinite(raw) or not low <= raw <= high:
        bad.append(FieldViolation(where, f"a number from {low:g} to {high:g}"))
        return None
    return raw if integer else float(raw)


def _parameters(bad: list[FieldViolation], raw: Any) -> Parameters:
    if raw is None:
        return Parameters()
    if not isinstance(raw, Mapping):
        bad.append(FieldViolation("parameters", "a mapping of sampling parameters"))
        return Parameters()
    known = {f for f in Parameters.__dataclass_fields__}
    for key in sorted(set(map(str, raw)) - known):
        bad.append(FieldViolation(f"parameters.{key}", f"unknown; one of {sorted(known)}"))
    stop = raw.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        bad.append(FieldViolation("parameters.stop", "a list of texts"))
        stop = []
    return Parameters(
        temperature=_number(bad, "parameters.temperature", raw.get("temperature"), 0, 2),
        top_p=_number(bad, "parameters.top_p", raw.get("top_p"), 0, 1),
        max_tokens=_number(bad, "parameters.max_tokens", raw.get("max_tokens"), 1, 2**31 - 1, True),
        stop=tuple(stop),
        seed=_number(bad, "parameters.seed", raw.get("seed"), -(2**63), 2**63 - 1, True),
        presence_penalty=_number(
            bad, "parameters.presence_penalty", raw.get("presence_penalty"), -2, 2
        ),
        frequency_penalty=_number(
            bad, "parameters.frequency_penalty", raw.get("frequency_penalty"), -2, 2
        ),
    )


def _variables(bad: list[FieldViolation], raw: Any) -> tuple[Variable, ...]:
    """``{name: {required, default, description}}``, ``{name: null}`` (required), a list of
    names (all required) or a list of ``{name, required, default, description}`` (the stored
    form: it keeps the order where a JSONB column would not)."""
    if raw is None:
        return ()
    if isinstance(raw, list) and all(isinstance(n, Mapping) and "name" in n for n in raw):
        if len({str(n["name"]) for n in raw}) != len(raw):
            bad.append(FieldViolation("variables", "a variable is declared twice"))
        raw = {n["name"]: {k: v for k, v in n.items() if k != "name"} for n in raw}
    elif isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        if len(set(raw)) != len(raw):
            bad.append(FieldViolation("variables", "a variable is declared twice"))
        raw = dict.fromkeys(raw)
    if not isinstance(raw, Mapping):
        bad.append(FieldViolation("variables", "a mapping of variable names"))
        return ()
    out = []
    for name, spec in raw.items():
        where = f"variables.{name}"
        if not isinstance(name, str) or not _VARIABLE.fullmatch(name):
            bad.append(FieldViolation(where, "a name of letters, digits and _"))
            continue
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            bad.append(FieldViolation(where, "a mapping with required, default, description"))
            continue
        unknown = set(map(str, spec)) - {"required", "default", "description"}
        if unknown:
            bad.append(FieldViolation(where, f"unknown keys {sorted(unknown)}"))
        has_default = "default" in spec and spec["default"] is not None
        required = spec.get("required", not has_default)
        if not isinstance(required, bool):
            bad.append(FieldViolation(f"{where}.required", "true or false"))
            required = True
        if required and has_default:
            bad.append(FieldViolation(where, "a required variable has no default"))
        if not required and not has_default:
            bad.append(FieldViolation(where, "an optional variable needs a default"))
        description = spec.get("description", "")
        if not isinstance(description, str):
            bad.append(FieldViolation(f"{where}.description", "a text"))
            description = ""
        out.append(Variable(name, required, spec.get("default"), description))
    return tuple(out)


def version_from_mapping(raw: Any, name: str | None = None) -> TemplateVersion:
    """A version from its file form (see the module); `name` overrides the file's ``name``.

    Checks the shape only; `llmesh.services.templates.render.check` checks the texts."""
    if not isinstance(raw, Mapping):
        raise invalid([FieldViolation("", "a mapping with variables, system, messages")])
    bad: list[FieldViolation] = []
    allowed = {"name", "description", "variables", "system", "messages", "parameters"}
    for key in sorted(set(map(str, raw)) - allowed):
        bad.append(FieldViolation(key, f"unknown key; one of {sorted(allowed)}"))
    name = name if name is not None else raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        bad.append(FieldViolation("name", "lowercase letters, digits, '.', '_' and '-', up to 64"))
        name = ""
    description = raw.get("description") or ""
    if not isinstance(description, str):
        bad.append(FieldViolation("description", "a text"))
        description = ""
    system = raw.get("system") or ""
    if not isinstance(system, str):
        bad.append(FieldViolation("system", "a text"))
        system = ""
    messages = []
    raw_messages = raw.get("messages") or []
    if not isinstance(raw_messages, list):
        bad.append(FieldViolation("messages", "a list of {role, content}"))
        raw_messages = []
    for i, m in enumerate(raw_messages):
        if not isinstance(m, Mapping) or set(map(str, m)) - {"role", "content"}:
            bad.append(FieldViolation(f"messages[{i}]", "a mapping with role and content"))
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            bad.append(FieldViolation(f"messages[{i}].role", f"one of {list(ROLES)}"))
        if not isinstance(content, str) or not content:
            bad.append(FieldViolation(f"messages[{i}].content", "a non-empty text"))
            continue
        messages.append(TemplateMessage(str(role), content))
    if not system and not messages and not raw_messages:
        bad.append(FieldViolation("messages", "a template needs a system prompt or messages"))
    variables = _variables(bad, raw.get("variables"))
    parameters = _parameters(bad, raw.get("parameters"))
    if bad:
        raise invalid(bad)
    return TemplateVersion(name, 0, description, variables, system, tuple(messages), parameters)


def version_to_mapping(version: TemplateVersion) -> dict[str, Any]:
    """The file form of `version` (without name, number and creation time)."""
    params = version.parameters
    values = {k: getattr(params, k) for k in Parameters.__dataclass_fields__}
    values["stop"] = list(params.stop)
    return {
        "description": version.description,
        "variables": [
            {"name": v.name, "required": v.required, "description": v.description}
            | ({} if v.required else {"default": v.default})
            for v in version.variables
        ],
        "system": version.system,
        "messages": [{"role": m.role, "content": m.content} for m in version.messages],
        "parameters": {k: v for k, v in values.items() if v not in (None, [])},
    }
