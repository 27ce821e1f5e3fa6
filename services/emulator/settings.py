"""Configuration of the emulator: address, latency profiles, fault rules, prompt cache.

Everything is a frozen dataclass with explicit defaults. `EmulatorSettings.from_mapping`
builds one from plain data (a YAML or JSON section), so a configuration file can carry
latency profiles, fault rules and batch timing without code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_NAMES = frozenset(
    {
        "rate_limit",
        "quota",
        "server_error",
        "unavailable",
        "overloaded",
        "auth",
        "bad_request",
        "not_found",
        "context_length",
        "stream_error",
        "cut",
        "malformed",
        "timeout",
        "stall",
    }
)
"""Every fault the emulator can inject (see `services/emulator/README.md`)."""

STATUS_FAULTS = frozenset(
    {
        "rate_limit",
        "quota",
        "server_error",
        "unavailable",
        "overloaded",
        "auth",
        "bad_request",
        "not_found",
        "context_length",
    }
)
"""Faults answered at once with an HTTP error status instead of a reply."""


@dataclass(frozen=True, slots=True)
class Latency:
    """How fast a model answers."""

    ttft_ms: float = 0.0
    """Time to first token, in milliseconds."""
    itl_ms: float = 0.0
    """Time between two consecutive streamed pieces (inter-token latency), in milliseconds."""

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.itl_ms < 0:
            raise ValueError("latencies must be >= 0")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault to inject, with its parameters."""

    fault: str
    """The fault's name, one of `FAULT_NAMES`."""
    after: int = 2
    """Token pieces sent before a mid-stream fault (stream_error, cut, malformed, stall)."""
    times: int | None = None
    """Inject only into the next `times` matching requests, then answer normally; None: always."""
    retry_after: float = 1.0
    """Seconds announced in the ``retry-after`` header of a rate_limit fault."""
    stall_ms: float | None = None
    """How long a stall lasts, in milliseconds; None: until the client goes away."""
    rate: float = 1.0
    """The share of matching requests that get the fault, chosen at random (a chaos soak's
    30 %: 0.3); the others are answered normally and do not use up `times`."""

    def __post_init__(self) -> None:
        if self.fault not in FAULT_NAMES:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of {sorted(FAULT_NAMES)}")
        if self.after < 0:
            raise ValueError("after must be >= 0")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.stall_ms is not None and self.stall_ms < 0:
            raise ValueError("stall_ms must be >= 0")
        if not 0 < self.rate <= 1:
            raise ValueError("rate must be > 0 and <= 1")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FaultSpec:
        """Build a spec from plain data such as ``{"fault": "cut", "after": 3}``."""
        known = {"fault", "after", "times", "retry_after", "stall_ms", "rate"}
        unknown = set(raw) - known - {"model"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if not isinstance(raw.get("fault"), str):
            raise ValueError("fault must be a string")
        times = raw.get("times")
        stall = raw.get("stall_ms")
        return cls(
            fault=raw["fault"],
            after=_int(raw.get("after", 2), "after"),
            times=None if times is None else _int(times, "times"),
            retry_after=_num(raw.get("retry_after", 1.0), "retry_after"),
            stall_ms=None if stall is None else _num(stall, "stall_ms"),
            rate=_num(raw.get("rate", 1.0), "rate"),
        )


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """The emulator's whole configuration."""

    host: str = "127.0.0.1"
    """Interface to bind."""
    port: int = 8090
    """TCP port to bind; 0 picks a free one (see `start`)."""
    allow_unauthenticated: bool = False
    """Bind a non-loopback `host` anyway: the emulator has no authentication, so `start`
    refuses one unless this is set, and logs a WARNING when it is."""
    latency: Mapping[str, Latency] = field(default_factory=dict)
    """Latency profile per model name; models not listed use `default_latency`."""
    default_latency: Latency = Latency()
    """Latency of every model without a profile: none by default, so replies are immediate."""
    faults: Mapping[str, FaultSpec] = field(default_factory=dict)
    """Fault rules from configuration, by model name (``"*"`` matches every model)."""
    context_windows: Mapping[str, int] = field(default_factory=dict)
    """Context window per model name, in the emulator's prompt tokens: a longer prompt, or
    one leaving less than the request's max_tokens, is answered with the provider's
    context-length error; models not listed have no limit."""
    cache_ttl_s: float = 300.0
    """Lifetime of an automatic (OpenAI) prompt-cache entry and of an Anthropic ``5m`` one."""
    cache_long_ttl_s: float = 3600.0
    """Lifetime of an Anthropic prompt-cache entry marked ``"ttl": "1h"``."""
    cache_min_tokens: int = 1024
    """Shortest prefix, in tokens, that the prompt cache stores or reads."""
    cache_max_entries: int = 65536
    """Prompt-cache entries kept at most; the oldest are dropped first."""
    shutdown_timeout_s: float = 1.0
    """How long a stopping server waits for replies still in flight before cancelling them."""
    batch_delay_s: float = 0.0
    """Seconds a batch (OpenAI Batch API, Anthropic Message Batches) stays in progress
    before its items are answered; ``POST /emulator/batches`` changes it at run time."""
    batch_expiry_s: float = 86400.0
    """A batch's completion window: seconds after its creation when the items it has not
    answered expire (24 hours, as at both providers)."""

    def __post_init__(self) -> None:
        if not self.batch_delay_s >= 0:
            raise ValueError("batch_delay_s must be >= 0")
        if not self.batch_expiry_s > 0:
            raise ValueError("batch_expiry_s must be > 0")

    def latency_for(self, model: str) -> Latency:
        """The latency profile of `model`."""
        return self.latency.get(model, self.default_latency)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> EmulatorSettings:
        """Build settings from plain data, e.g. a YAML section.

        ``latency`` maps model -> ``{"ttft_ms": .., "itl_ms": ..}``; ``faults`` maps model ->
        a fault spec (see `FaultSpec.from_mapping`); other keys are the fields of this class.
        """
        raw = dict(raw)
        latency = {
            str(m): Latency(
                _num(v.get("ttft_ms", 0), "ttft_ms"), _num(v.get("itl_ms", 0), "itl_ms")
            )
            for m, v in (raw.pop("latency", None) or {}).items()
        }
        faults = {
            str(m): FaultSpec.from_mapping(v) for m, v in (raw.pop("faults", None) or {}).items()
        }
        windows = {
            str(m): _int(v, "context_windows")
            for m, v in (raw.pop("context_windows", None) or {}).items()
        }
        if any(v < 1 for v in windows.values()):
            raise ValueError("context_windows must be >= 1")
        default = raw.pop("default_latency", None) or {}
        default_latency = Latency(
            _num(default.get("ttft_ms", 0), "ttft_ms"), _num(default.get("itl_ms", 0), "itl_ms")
        )
        known = {
            "host",
            "port",
            "allow_unauthenticated",
            "cache_ttl_s",
            "cache_long_ttl_s",
            "cache_min_tokens",
            "cache_max_entries",
            "shutdown_timeout_s",
            "batch_delay_s",
            "batch_expiry_s",
        }
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown emulator settings: {sorted(unknown)}")
        for key in ("batch_delay_s", "batch_expiry_s"):
            if key in raw:
                raw[key] = _num(raw[key], key)
        if not isinstance(raw.get("allow_unauthenticated", False), bool):
            raise ValueError("allow_unauthenticated must be true or false")
        return cls(
            latency=latency,
            faults=faults,
            default_latency=default_latency,
            context_windows=windows,
            **raw,
        )


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    return value


def _num(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)
