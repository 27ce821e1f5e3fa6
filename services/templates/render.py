"""Rendering a template version in Jinja2's sandbox.

`SandboxedEnvironment` with `StrictUndefined` and no autoescaping: a text cannot reach
Python internals (``{{ ''.__class__ }}`` is a security error), an undefined name is an error
rather than an empty text, and ``*`` / ``**`` cannot build huge values. A version is checked
when it is created (`check`: its texts compile and use only its declared variables) and a
call's variables when it renders (`Renderer.render`: none missing, none extra). Every
problem is INVALID_REQUEST (gRPC INVALID_ARGUMENT) with a field violation naming the text or
the variable.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from llmesh.services.common.errors import FieldViolation
from llmesh.services.templates.model import Parameters, TemplateVersion, invalid

__all__ = ["MAX_OUTPUT_CHARS", "Rendered", "Renderer", "check"]

MAX_OUTPUT_CHARS = 1_000_000
"""The longest text one template message may render to, and the largest sequence ``*``
may build."""


class _Environment(SandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded (the stock sandbox leaves them open)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_OUTPUT_CHARS
                ):
                    raise SecurityError("the repeated value would be too large")
            return left * right
        if isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("the exponent is too large")
        return left**right


def _environment() -> _Environment:
    return _Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def _texts(version: TemplateVersion) -> list[tuple[str, str, str]]:
    """(field, role, text) of every text of `version`, in the order they are sent."""
    out = [("system", "system", version.system)] if version.system else []
    out += [(f"messages[{i}].content", m.role, m.content) for i, m in enumerate(version.messages)]
    return out


def check(version: TemplateVersion) -> None:
    """INVALID_REQUEST unless every text compiles and uses only declared variables."""
    env = _environment()
    declared = {v.name for v in version.variables}
    bad: list[FieldViolation] = []
    for where, _, text in _texts(version):
        try:
            used = meta.find_undeclared_variables(env.parse(text))
        except jinja2.TemplateSyntaxError as exc:
            bad.append(
                FieldViolation(where, f"not a valid template: {exc.message} (line {exc.lineno})")
            )
            continue
        for name in sorted(used - declared):
            bad.append(FieldViolation(where, f"uses {name!r}, which is not a declared variable"))
    if bad:
        raise invalid(bad)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered version: its messages (role, text) and its default parameters."""

    messages: tuple[tuple[str, str], ...]
    parameters: Parameters
    template: str
    """``name@version``."""


class Renderer:
    """Renders versions; keeps the last texts compiled (versions never change)."""

    def __init__(self, cached: int = 256) -> None:
        self._env = _environment()
        self._compiled: OrderedDict[str, jinja2.Template] = OrderedDict()
        self._cached = cached

    def _template(self, text: str) -> jinja2.Template:
        compiled = self._compiled.get(text)
        if compiled is None:
            compiled = self._compiled[text] = self._env.from_string(text)
            if len(self._compiled) > self._cached:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(text)
        return compiled

    def render(
        self,
        version: TemplateVersion,
        variables: Mapping[str, Any],
        where: str = "template_variables",
    ) -> Rendered:
        """`version` with `variables` (defaults fill the optional ones); INVALID_REQUEST
        naming each missing or undeclared variable, or the text that failed to render."""
        declared = {v.name: v for v in version.variables}
        bad = [
            FieldViolation(f"{where}.{name}", f"is not a variable of template {version.ref}")
            for name in sorted(set(variables) - set(declared))
        ]
        bad += [
            FieldViolation(f"{where}.{v.name}", f"is required by template {version.ref}")
            for v in version.variables
            if v.required and v.name not in variables
        ]
        if bad:
            raise invalid(bad)
        values = {v.name: v.default for v in version.variables if not v.required}
        values.update(variables)
        out = []
        for field, role, text in _texts(version):
            try:
                rendered = self._template(text).render(values)
            except SecurityError as exc:
                bad.append(FieldViolation(field, f"refused by the sandbox: {exc}"))
                continue
            except jinja2.TemplateError as exc:
                bad.append(FieldViolation(field, f"did not render: {exc}"))
                continue
            except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
                bad.append(FieldViolation(field, f"did not render: {type(exc).__name__}: {exc}"))
                continue
            if len(rendered) > MAX_OUTPUT_CHARS:
                bad.append(FieldViolation(field, f"renders to over {MAX_OUTPUT_CHARS} characters"))
                continue
            out.append((role, rendered))
        if bad:
            raise invalid(bad)
        return Rendered(tuple(out), version.parameters, version.ref)
