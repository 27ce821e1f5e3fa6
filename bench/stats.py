"""Percentiles and medians, with None for an empty sample rather than an exception."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) by linear interpolation; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are not None; None when none are."""
    present = [v for v in values if v is not None]
    return percentile(present, 50)


def difference(a: float | None, b: float | None) -> float | None:
    """``a - b``, or None when either is missing."""
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or `b` is zero."""
    return None if a is None or b is None or b == 0 else a / b
