"""Test doubles for the admission tests."""

from __future__ import annotations


class FakeClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
