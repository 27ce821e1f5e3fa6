"""The call: what a caller asked for, typed, and the same call once routed.

A `Call` is made once from the wire (gRPC or HTTP) and never changes; its call type is the
type of its `request` (`ChatRequest` today; embeddings, batch items and others add their
own request types). Routing resolves it exactly once, at the top of the call path, into a
`RoutedCall`: its ordered targets, the policy it runs with, and what every layer of the
path shares about the call in flight (its id, its attempt trail, its time limit and the
gates each attempt passes before it is sent).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.policy import CallOptions, Policy
from llmesh.services.core.priority import Priority
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Trail

__all__ = ["Call", "ChatCall", "Gate", "RoutedCall", "TemplateUse"]

R = TypeVar("R")
"""The call type: the request's own type."""


@dataclass(frozen=True, slots=True)
class TemplateUse:
    """A prompt template a chat call renders before its own messages."""

    name: str
    version: int | None = None
    """The pinned version; None: the template's weights (or its latest) pick."""
    variables: Mapping[str, Any] = field(default_factory=dict)
    """The call's variables (JSON values)."""


@dataclass(frozen=True)  # no slots: `ChatCall(...)` (a generic alias) sets __orig_class__
class Call(Generic[R]):
    """A validated call as the caller made it: a model name (or alias/route) plus the request."""

    model: str
    request: R
    fallbacks: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    options: CallOptions = field(default_factory=CallOptions)
    caller: Caller = field(default_factory=Caller)
    """Who the call acts for (its tenant and API key)."""
    response_cache: bool | None = None
    """True: use the response cache even above temperature 0; False: never; None: default."""
    response_cache_ttl: float | None = None
    """Seconds a stored reply stays valid; None for the configured TTL."""
    max_cost_usd: float | None = None
    """The most the call may cost; it goes to the cheapest route target that fits."""
    client_retry: int = 0
    """The caller's retry number of this call (``llmesh-retry-count`` metadata; the SDKs'
    ``x-stainless-retry-count``): 0 for a first try."""
    priority: Priority = Priority.NORMAL
    """The call's tier, resolved from the request, key, tenant and ceiling
    (`llmesh.services.core.priority`): saturated targets serve higher tiers first."""
    template: TemplateUse | None = None
    """The prompt template rendered first (the processor's Prepare); None: none."""
    trace_id: str = ""
    """The W3C trace id the call belongs to (32 lower-case hex digits; empty: none), kept
    in its ledger record so its trace can be found."""

    def acting(self, caller: Caller, client_retry: int, priority: Priority, trace_id: str) -> Self:
        """This call as its caller makes it: who it acts for, the caller's retry number, its
        tier and its trace. Equal to ``dataclasses.replace`` with those fields, copied
        field by field instead of through ``__init__``: a server does it for every call
        that carries a trace or acts for a tenant, and this is several times cheaper."""
        made = object.__new__(type(self))
        fields = made.__dict__
        fields.update(self.__dict__)  # a generic alias's __orig_class__ too
        fields["caller"] = caller
        fields["client_retry"] = client_retry
        fields["priority"] = priority
        fields["trace_id"] = trace_id
        return made


ChatCall = Call[ChatRequest]
"""A chat call."""

Gate = Callable[[AttemptRecord, Any], Awaitable[None]]
"""Admits one attempt (its record names the target; the second argument is the request as
sent) just before its request is sent, e.g. the target's rate limit or the call's budget;
raises `LlmeshError` to keep it unsent."""


@dataclass(frozen=True, slots=True)
class RoutedCall(Generic[R]):
    """A call resolved into its ordered targets (route, then fallbacks) and its policy."""

    call: Call[R]
    targets: tuple[Target, ...]
    policy: Policy
    request_id: str
    trail: Trail
    """The attempts, filled in as they happen; readable also when the call fails."""
    timeout: float | None = None
    """Seconds the call may take from when it was routed (`opened`); None for no limit."""
    opened: float = field(default_factory=time.monotonic)
    """When the call was routed, on `time.monotonic`."""
    admit: tuple[Gate, ...] = ()
    """Awaited in order before each attempt is sent (first try, retry, hedge, fallback,
    mid-stream restart or continuation); a layer puts its gate first."""
    failover: frozenset[Target] = frozenset()
    """Targets that, failing, give way to the next target at once instead of being retried:
    a pool's deployments but its last (the next deployment is the retry)."""
    downgrade: tuple[Target, ...] = ()
    """Cheaper targets, in order, the call may switch to when its budget left cannot cover
    `targets` (the route's ``downgrade``)."""

    def gated(self, gate: Gate, *, last: bool = False) -> RoutedCall[R]:
        """This call with `gate` put first among its `admit` gates (`last`: after them).

        Built field by field: a layer adds its gate on every call, and this is several
        times cheaper than `dataclasses.replace`."""
        admit = (*self.admit, gate) if last else (gate, *self.admit)
        return RoutedCall(
            self.call,
            self.targets,
            self.policy,
            self.request_id,
            self.trail,
            self.timeout,
            self.opened,
            admit,
            self.failover,
            self.downgrade,
        )

    @property
    def ends(self) -> float | None:
        """When the call's time is up, on `time.monotonic` (None: no limit)."""
        return None if self.timeout is None else self.opened + self.timeout

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or None for no limit."""
        ends = self.ends
        return None if ends is None else max(ends - time.monotonic(), 0.0)

    @property
    def request(self) -> R:
        """The call's request."""
        return self.call.request

    @property
    def caller(self) -> Caller:
        """Who the call acts for."""
        return self.call.caller
