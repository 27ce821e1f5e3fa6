"""Per-request controls: which fault to inject, how slow to be, how many tokens are cached.

A request's fault comes from, in order: its ``x-emulator-fault`` header (``none`` disables
faults for that request), a rule set at run time with ``POST /emulator/faults`` for its model,
then a rule for ``"*"``, then the same two lookups in the configured rules. A rule with
``times`` applies to that many requests and is then dropped. Latency comes from the
``x-emulator-ttft-ms`` / ``x-emulator-itl-ms`` headers, else the model's profile, else the
default profile. How each API renders a fault lives with that API's wire format.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmesh.services.emulator.settings import EmulatorSettings, FaultSpec

FAULT = "x-emulator-fault"
FAULT_AFTER = "x-emulator-fault-after"
RETRY_AFTER = "x-emulator-retry-after"
STALL_MS = "x-emulator-stall-ms"
TTFT_MS = "x-emulator-ttft-ms"
ITL_MS = "x-emulator-itl-ms"
CACHED_TOKENS = "x-emulator-cached-tokens"

MID_STREAM_FAULTS = frozenset({"stream_error", "cut", "malformed", "stall"})
"""Faults that strike after some pieces of a started reply."""


class ControlError(ValueError):
    """An ``x-emulator-*`` header or a fault rule that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Controls:
    """Everything the emulator varies for one request."""

    fault: FaultSpec | None = None
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    cached_tokens: int | None = None
    """Cached tokens forced by ``x-emulator-cached-tokens``; None: simulate the cache."""


class FaultRules:
    """Fault rules by model: the configured ones plus those set at run time."""

    def __init__(self, configured: Mapping[str, FaultSpec]) -> None:
        self._configured = dict(configured)
        self._config_left: dict[str, int | None] = {}
        self._runtime: dict[str, FaultSpec] = {}
        self._runtime_left: dict[str, int | None] = {}
        self.injected: dict[str, int] = {}
        """Faults injected so far, by fault name (rules only; headers are not counted)."""
        self.reset()

    def add(self, model: str, spec: FaultSpec) -> None:
        """Set the run-time rule for `model` (``"*"``: every model), replacing any earlier one."""
        self._runtime[model] = spec
        self._runtime_left[model] = spec.times

    def clear(self, model: str | None = None) -> None:
        """Drop the run-time rules (only `model`'s when given)."""
        if model is None:
            self._runtime.clear()
            self._runtime_left.clear()
        else:
            self._runtime.pop(model, None)
            self._runtime_left.pop(model, None)

    def reset(self) -> None:
        """Drop the run-time rules and re-arm the configured ones."""
        self.clear()
        self._config_left = {m: s.times for m, s in self._configured.items()}

    def take(self, model: str) -> FaultSpec | None:
        """The fault for the next request to `model`, consuming one use of a limited rule."""
        for rules, left in (
            (self._runtime, self._runtime_left),
            (self._configured, self._config_left),
        ):
            for key in (model, "*"):
                spec = rules.get(key)
                if spec is None or key not in left:
                    continue
                if spec.rate < 1 and random.random() >= spec.rate:
                    return None  # this request is spared
                self.injected[spec.fault] = self.injected.get(spec.fault, 0) + 1
                remaining = left[key]
                if remaining is not None:
                    if remaining <= 1:
                        del left[key]
                        if rules is self._runtime:
                            del rules[key]
                    else:
                        left[key] = remaining - 1
                return spec
        return None

    def snapshot(self) -> dict[str, Any]:
        """The rules in force, as JSON-ready data."""

        def show(rules: Mapping[str, FaultSpec], left: Mapping[str, int | None]) -> dict[str, Any]:
            return {
                m: {
                    "fault": s.fault,
                    "after": s.after,
                    "times_left": left[m],
                    "retry_after": s.retry_after,
                    "stall_ms": s.stall_ms,
                    "rate": s.rate,
                }
                for m, s in rules.items()
                if m in left
            }

        return {
            "runtime": show(self._runtime, self._runtime_left),
            "configured": show(self._configured, self._config_left),
            "injected": dict(self.injected),
        }


def request_controls(
    headers: Mapping[str, str], model: str, settings: EmulatorSettings, rules: FaultRules
) -> Controls:
    """Resolve the controls of one request from its headers, the rules and the settings."""
    name = headers.get(FAULT)
    fault: FaultSpec | None
    if name is None:
        fault = rules.take(model)
    elif name.strip().lower() == "none":
        fault = None
    else:
        after = int(_number(headers, FAULT_AFTER, 2))
        retry_after = _number(headers, RETRY_AFTER, 1.0)
        stall = None if headers.get(STALL_MS) is None else _number(headers, STALL_MS, 0.0)
        try:
            fault = FaultSpec(name.strip().lower(), after, None, retry_after, stall)
        except ValueError as e:
            raise ControlError(f"invalid {FAULT} header: {e}") from None
    profile = settings.latency_for(model)
    cached = headers.get(CACHED_TOKENS)
    return Controls(
        fault=fault,
        ttft_ms=_number(headers, TTFT_MS, profile.ttft_ms),
        itl_ms=_number(headers, ITL_MS, profile.itl_ms),
        cached_tokens=None if cached is None else int(_number(headers, CACHED_TOKENS, 0)),
    )


def _number(headers: Mapping[str, str], name: str, default: float) -> float:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ControlError(f"invalid {name} header: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ControlError(f"invalid {name} header: {raw!r} must be a finite number >= 0")
    return value
