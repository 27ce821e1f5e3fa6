"""Typed configuration sections: checked against their own field types, errors naming the key.

A section is a frozen dataclass whose fields carry their defaults (declared once, there) and
whose ``__post_init__`` calls `check_fields`. Each field is checked (and normalized: an
integer where a number is expected becomes a float, a list of names becomes a frozenset of
enum members, a mapping becomes the nested section) against its type annotation and the
bounds given with `bounded`. `build` makes a section from a YAML mapping, refusing unknown
keys. Every failure is a `FieldError` carrying the dotted key it was found at, so
`load_config` can report ``resilience.retry.max_attempts: expected an integer >= 1, got 'x'``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "FieldError", "bounded", "build", "check_fields", "flag", "names"]

_T = TypeVar("_T")


class ConfigError(ValueError):
    """The configuration file or environment is invalid."""


class FieldError(ConfigError):
    """A bad value, with the dotted key it was found at (relative to the section built)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        """Where the value was found, e.g. ``retry.max_attempts``; empty for the section."""
        self.problem = problem
        """What is wrong with it, e.g. ``expected an integer >= 1, got 'x'``."""

    def under(self, prefix: str) -> FieldError:
        """The same error, seen from the section that holds this one under `prefix`."""
        return FieldError(f"{prefix}.{self.key}" if self.key else prefix, self.problem)


def names(value: object, key: str) -> tuple[str, ...]:
    """A YAML list of non-empty strings (absent or null: none)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key}: expected a list of names, got {value!r}")
    return tuple(value)


def flag(value: object, key: str) -> bool:
    """A YAML boolean; anything else (a quoted ``"false"`` reads true to ``bool``) is an error."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def bounded(default: _T, *, ge: float | None = None, gt: float | None = None) -> _T:
    """A field with a default and a lower bound (``>= ge`` or ``> gt``) `check_fields` enforces."""
    return dataclasses.field(default=default, metadata={"ge": ge, "gt": gt})  # type: ignore[no-any-return]


def build(cls: type[_T], raw: object) -> _T:
    """The section `cls` from a YAML mapping (None: all defaults); unknown keys are refused."""
    if raw is None:
        raw = {}
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise FieldError("", f"expected a mapping, got {raw!r}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - known
    if unknown:
        raise FieldError("", f"unknown keys {sorted(map(str, unknown))}")
    return cls(**raw)


def check_fields(section: Any) -> None:
    """Check and normalize every field of a frozen dataclass; call it from ``__post_init__``."""
    hints = _hints(type(section))
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        try:
            checked = _check(hints[f.name], value, f.metadata)
        except FieldError as exc:
            raise exc.under(f.name) from None
        except _Problem as exc:
            raise FieldError(f.name, str(exc)) from None
        if checked is not value:
            object.__setattr__(section, f.name, checked)


class _Problem(Exception):
    """What is wrong with a value; the caller adds where it was."""


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The class's resolved field annotations (resolved once per class)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _bound(metadata: Mapping[str, Any]) -> str:
    if metadata.get("ge") is not None:
        return f" >= {metadata['ge']:g}"
    if metadata.get("gt") is not None:
        return f" > {metadata['gt']:g}"
    return ""


def _in_bounds(number: float, metadata: Mapping[str, Any]) -> bool:
    ge, gt = metadata.get("ge"), metadata.get("gt")
    return math.isfinite(number) and (ge is None or number >= ge) and (gt is None or number > gt)


def _check(hint: Any, value: Any, metadata: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _check(inner, value, metadata)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Problem(f"expected true or false, got {value!r}")
        return value
    if hint is int:
        whole = isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not (isinstance(value, int) or whole):
            raise _Problem(f"expected an integer{_bound(metadata)}, got {value!r}")
        if not _in_bounds(value, metadata):
            raise _Problem(f"expected an integer{_bound(metadata)}, got {value!r}")
        return int(value) if whole else value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Problem(f"expected a number{_bound(metadata)}, got {value!r}")
        if not _in_bounds(value, metadata):
            raise _Problem(f"expected a number{_bound(metadata)}, got {value!r}")
        return value if isinstance(value, float) else float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Problem(f"expected a string, got {value!r}")
        return value
    if origin is tuple and args == (str, Ellipsis):
        listed = isinstance(value, list | tuple)
        if not listed or not all(isinstance(v, str) for v in value):
            raise _Problem(f"expected a list of strings, got {value!r}")
        return value if isinstance(value, tuple) else tuple(value)
    if origin is frozenset and isinstance(args[0], type) and issubclass(args[0], enum.Enum):
        return _enum_set(args[0], value)
    item: Any = args[1] if len(args) == 2 else None
    if origin is Mapping and isinstance(item, type) and issubclass(item, enum.Enum):
        return _enum_map(item, value)
    if origin is Mapping and isinstance(item, type) and dataclasses.is_dataclass(item):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _Problem(f"expected a mapping of name -> settings, got {value!r}")
        out = {}
        for name, body in value.items():
            try:
                out[str(name)] = build(item, body)
            except FieldError as exc:
                raise exc.under(str(name)) from None
        return out
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value)
    raise TypeError(f"no configuration check for {hint!r}")  # a programming error


def _enum_map(kind: type[enum.Enum], value: Any) -> Mapping[str, Any]:
    """A mapping of name -> member, members named case-insensitively (``high``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Problem(f"expected a mapping of name -> {kind.__name__}, got {value!r}")
    out = {}
    for name, item in value.items():
        member = item if isinstance(item, kind) else None
        if isinstance(item, str):
            member = kind.__members__.get(item.strip().upper())
        if member is None:
            names = ", ".join(m.name.lower() for m in kind)
            raise _Problem(f"{name}: expected one of {names}, got {item!r}")
        out[str(name)] = member
    return out


def _enum_set(kind: type[enum.Enum], value: Any) -> frozenset[Any]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise _Problem(f"expected a list of {kind.__name__} names, got {value!r}")
    members = []
    for item in value:
        if isinstance(item, kind):
            members.append(item)
        elif isinstance(item, str) and item in kind.__members__:
            members.append(kind[item])
        else:
            raise _Problem(f"unknown {kind.__name__} {item!r}")
    return value if isinstance(value, frozenset) else frozenset(members)
