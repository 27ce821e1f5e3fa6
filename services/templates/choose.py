"""Which version a call naming only a template gets.

Without weights, the latest. With weights, a version at random in proportion to its
weight; sticky when the call names its end user (`user`): a deterministic hash of the
template's name, the tenant and the user picks, so one user keeps one version for as long
as the weights stay the same. ``name@version`` pins a version and skips all this.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

__all__ = ["pick_version", "sticky_point"]


def sticky_point(name: str, tenant: str, user: str) -> float:
    """A point in [0, 1) fixed by the template, the tenant and the user."""
    digest = hashlib.sha256(f"{name}\x00{tenant}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_version(
    latest: int,
    weights: Sequence[tuple[int, float]],
    point: float | None = None,
    rng: random.Random | None = None,
) -> int:
    """The version at `point` (in [0, 1)) of the weights laid end to end by version; a
    random point when None; `latest` when there are no weights."""
    chosen = sorted((v, w) for v, w in weights if w > 0)
    if not chosen:
        return latest
    total = sum(w for _, w in chosen)
    x = (point if point is not None else (rng or random).random()) * total
    for version, weight in chosen:
        x -= weight
        if x < 0:
            return version
    return chosen[-1][0]
