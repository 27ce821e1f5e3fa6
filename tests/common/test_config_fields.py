from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from llmesh.services.common.config_fields import FieldError, bounded, build, check_fields
from llmesh.services.common.errors import Reason


@dataclass(frozen=True)
class Inner:
    count: int = bounded(1, ge=1)
    """A count."""
    ratio: float = bounded(0.5, gt=0)
    """A ratio."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    """A nested section."""
    table: Mapping[str, Inner] = field(default_factory=dict)
    """Named sections."""
    reasons: frozenset[Reason] = frozenset()
    """Enum members by name."""
    name: str | None = None
    """An optional string."""
    on: bool = True
    """A flag."""
    words: tuple[str, ...] = ("a",)
    """A list of strings."""

    def __post_init__(self) -> None:
        check_fields(self)


def test_values_are_normalized_to_their_field_types() -> None:
    outer = build(
        Outer,
        {
            "inner": {"count": 2.0, "ratio": 3},
            "table": {1: None},
            "reasons": ["OVERLOADED"],
            "words": ["x", "y"],
        },
    )
    assert outer.inner == Inner(count=2, ratio=3.0)
    assert isinstance(outer.inner.count, int) and isinstance(outer.inner.ratio, float)
    assert outer.table == {"1": Inner()}
    assert outer.reasons == frozenset({Reason.OVERLOADED})
    assert outer.words == ("x", "y") and build(Outer, {"words": []}).words == ()
    assert build(Outer, None) == Outer()


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({"inner": {"count": 0}}, "inner.count", "expected an integer >= 1, got 0"),
        ({"inner": {"count": True}}, "inner.count", "expected an integer >= 1, got True"),
        ({"inner": {"ratio": float("nan")}}, "inner.ratio", "expected a number > 0, got nan"),
        ({"inner": {"ratio": float("inf")}}, "inner.ratio", "expected a number > 0, got inf"),
        ({"table": {"a": {"ratio": "1"}}}, "table.a.ratio", "expected a number > 0, got '1'"),
        ({"table": {"a": {"x": 1}}}, "table.a", "unknown keys ['x']"),
        ({"reasons": "OVERLOADED"}, "reasons", "expected a list of Reason names, got 'OVERLOADED'"),
        ({"name": 1}, "name", "expected a string, got 1"),
        ({"on": "yes"}, "on", "expected true or false, got 'yes'"),
        ({"words": "x"}, "words", "expected a list of strings, got 'x'"),
        ({"words": ["x", 1]}, "words", "expected a list of strings, got ['x', 1]"),
        ({"colour": "red"}, "", "unknown keys ['colour']"),
    ],
)
def test_errors_name_the_key(raw: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(FieldError) as info:
        build(Outer, raw)
    assert (info.value.key, info.value.problem) == (key, problem)
    assert str(info.value.under("top")) == (f"top.{key}" if key else "top") + f": {problem}"


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(FieldError, match=r"^count: expected an integer >= 1, got 0$"):
        Inner(count=0)
    with pytest.raises(ValueError):  # a FieldError is a ValueError, as before
        Inner(ratio=-1.0)
