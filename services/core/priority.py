"""Priority tiers: which calls a saturated target serves first and sheds last.

Five tiers, ordered: ``batch`` < ``low`` < ``normal`` < ``high`` < ``critical``. A call's
tier is the one its request names (``llmesh-priority`` metadata, ``x-llmesh-priority`` over
HTTP), else its API key's default, else its tenant's configured default, else ``normal``;
then it is lowered to the ceiling of the key or token that proved the caller (a request
asking above it is capped, not refused).
"""

from __future__ import annotations

import enum

__all__ = ["NAMES", "Priority", "parse_priority", "resolve_priority", "token_ceiling"]


class Priority(enum.IntEnum):
    """A call's priority tier; a higher value is served first and shed last."""

    BATCH = 0
    """Below low: batch items, run on capacity nobody else wants."""
    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The tier's name as written in config, metadata, headers and trails (``high``)."""
        return _LABELS[self._value_]


_LABELS = tuple(p.name.lower() for p in Priority)
"""Each tier's label, by value (read on every call: trails and ledger rows carry it)."""

NAMES = ", ".join(p.label for p in Priority)
"""The tier names, lowest first, for error messages."""


def parse_priority(text: str) -> Priority | None:
    """The tier named by `text` (case-insensitive, surrounding spaces ignored), or None."""
    return Priority.__members__.get(text.strip().upper())


def token_ceiling(tier: int) -> Priority:
    """The highest tier a bearer token's numeric tier grants: 0 (the lowest, and API keys
    without a ceiling of their own) ``normal``, 1 ``high``, 2 and more ``critical``."""
    return Priority(min(Priority.NORMAL + max(tier, 0), Priority.CRITICAL))


def resolve_priority(
    requested: Priority | None,
    key_default: Priority | None,
    tenant_default: Priority | None,
    ceiling: Priority,
) -> Priority:
    """The tier a call runs at: the first of `requested`, `key_default`, `tenant_default`
    and ``normal`` that is set, lowered to `ceiling`."""
    for chosen in (requested, key_default, tenant_default):
        if chosen is not None:  # not `or`: BATCH is 0
            return min(chosen, ceiling)
    return min(Priority.NORMAL, ceiling)
