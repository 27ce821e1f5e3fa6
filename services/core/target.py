"""A target: one provider model a call can go to."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """One provider model a call can go to."""

    provider: str
    model: str

    @property
    def name(self) -> str:
        """The ``provider/model`` name."""
        return f"{self.provider}/{self.model}"
