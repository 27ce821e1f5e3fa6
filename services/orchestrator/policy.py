"""How one call moves between targets: its route's settings merged with the request's."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.common.config import RouteConfig


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


def effective_policy(route: RouteConfig | None, options: CallOptions) -> Policy:
    """The request's options where given, else the route's, else the defaults."""
    mid = options.mid_stream or (
        MidStreamPolicy(route.mid_stream_policy) if route else MidStreamPolicy.NEVER
    )
    hedge_delay = options.hedge_delay if options.hedge_delay is not None else None
    hedge_pct = options.hedge_percentile
    if options.hedge is False:
        hedge_delay = hedge_pct = None
    elif hedge_delay is None and hedge_pct is None and route is not None:
        hedge_delay, hedge_pct = route.hedge_delay, route.hedge_percentile
    if options.hedge and hedge_delay is None and hedge_pct is None:
        hedge_pct = 95.0
    return Policy(
        mid_stream=mid,
        first_token_timeout=options.first_token_timeout
        if options.first_token_timeout is not None
        else (route.first_token_timeout if route else None),
        stall_timeout=options.stall_timeout
        if options.stall_timeout is not None
        else (route.stall_timeout if route else None),
        hedge_delay=hedge_delay,
        hedge_percentile=hedge_pct,
    )
