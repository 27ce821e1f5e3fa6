"""How one call moves between targets: the request's options and the settings it runs with."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CallOptions", "MidStreamPolicy", "Policy"]


class MidStreamPolicy(enum.Enum):
    """What happens when a target fails after output reached the caller."""

    NEVER = "never"
    RESTART = "restart"
    CONTINUE = "continue"


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-request overrides; None means: the route's setting."""

    mid_stream: MidStreamPolicy | None = None
    first_token_timeout: float | None = None
    stall_timeout: float | None = None
    hedge: bool | None = None
    hedge_delay: float | None = None
    hedge_percentile: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings a call runs with."""

    mid_stream: MidStreamPolicy = MidStreamPolicy.NEVER
    first_token_timeout: float | None = None
    stall_timeout: float | None = None
    hedge_delay: float | None = None
    """Fixed hedge delay in seconds; None with `hedge_percentile` None means no hedging."""
    hedge_percentile: float | None = None

    @property
    def hedging(self) -> bool:
        """True when the call hedges."""
        return self.hedge_delay is not None or self.hedge_percentile is not None
