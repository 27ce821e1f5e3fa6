"""A retry budget per target, so retries cannot multiply load during an outage.

Retries in the last `window` seconds may not exceed ``min_retries + ratio * requests`` in
the same window (the scheme of Finagle's and gRPC's retry throttling): with the default
ratio a failing target gets at most 20 % extra load, while `min_retries` lets a target with
little traffic still retry.

The window slides in `_BUCKETS` buckets of ``window / _BUCKETS`` seconds, so it spans
between 9/10 of `window` and `window`. Each call is O(1) (a fixed number of buckets), and a
target idle for a whole window is dropped (it has nothing left to count), so memory is
bounded by the number of targets active within one window.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from llmesh.services.common.resilience_settings import RetryBudgetSettings

__all__ = ["RetryBudget", "RetryBudgetSettings"]

_BUCKETS = 10


class _Window:
    """Per-target ring of buckets; `epochs[i]` is the bucket number slot i counts for."""

    __slots__ = ("epochs", "last", "requests", "retries")

    def __init__(self) -> None:
        self.epochs = [-1] * _BUCKETS
        self.requests = [0] * _BUCKETS
        self.retries = [0] * _BUCKETS
        self.last = -1
        """The latest bucket number this target was touched in."""

    def slot(self, epoch: int) -> int:
        """The slot for bucket `epoch`, cleared if it still holds an older bucket."""
        i = epoch % _BUCKETS
        if self.epochs[i] != epoch:
            self.epochs[i] = epoch
            self.requests[i] = 0
            self.retries[i] = 0
        return i

    def totals(self, epoch: int) -> tuple[int, int]:
        """Requests and retries in the buckets of the window ending at `epoch`."""
        oldest = epoch - _BUCKETS + 1
        requests = retries = 0
        for i in range(_BUCKETS):
            if self.epochs[i] >= oldest:
                requests += self.requests[i]
                retries += self.retries[i]
        return requests, retries


class RetryBudget:
    """Counts first attempts and retries per target and decides whether a retry may go."""

    def __init__(
        self, settings: RetryBudgetSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._width = settings.window / _BUCKETS
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        """Least recently touched first, so idle targets are dropped from the front."""

    def record_request(self, target: str) -> None:
        """Count a first attempt (never a retry) to `target`."""
        epoch = self._epoch()
        window = self._window(target, epoch)
        window.requests[window.slot(epoch)] += 1

    def try_spend(self, target: str) -> bool:
        """True, and the retry is counted, if `target`'s budget allows one more retry now."""
        epoch = self._epoch()
        window = self._window(target, epoch)
        requests, retries = window.totals(epoch)
        allowed = self._settings.min_retries + self._settings.ratio * requests
        if retries + 1e-9 >= allowed:  # tolerance: ratio * requests is a float product
            return False
        window.retries[window.slot(epoch)] += 1
        return True

    def tracked(self) -> int:
        """How many targets are held in memory (those active within the last window)."""
        return len(self._windows)

    def _epoch(self) -> int:
        return math.floor(self._clock() / self._width)

    def _window(self, target: str, epoch: int) -> _Window:
        windows = self._windows
        window = windows.get(target)
        if window is None:
            window = windows[target] = _Window()
        else:
            windows.move_to_end(target)
        window.last = epoch
        # Drop targets whose last activity has left the window: amortised O(1).
        while windows:
            oldest = next(iter(windows.values()))
            if oldest.last > epoch - _BUCKETS:
                break
            windows.popitem(last=False)
        return window
