"""What a call consumed (`Usage`) and how it ended (`CallStatus`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["CallStatus", "Usage"]


class CallStatus(enum.Enum):
    """How a call ended; the values are what the ledger stores in its ``status`` column."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """The process serving the call died mid-call (kill -9, a crash, a lost host): the
    ledger closed it afterwards with its estimated usage (see ``llmesh.services.ledger``)."""


@dataclass(slots=True)
class Usage:
    """Token counts of one call. `input_tokens` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    def add(self, part: Usage | None) -> None:
        """Add `part`'s counts to these (in place); the sum is estimated if either part is.

        The one place usage is summed: across an engine call's targets, across the
        attempts the ledger records, and wherever else counts are totalled.
        """
        if part is None:
            return
        self.input_tokens += part.input_tokens
        self.output_tokens += part.output_tokens
        self.cache_read_tokens += part.cache_read_tokens
        self.cache_write_tokens += part.cache_write_tokens
        self.reasoning_tokens += part.reasoning_tokens
        self.estimated = self.estimated or part.estimated

    def to_json(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict (the ledger's attempt trail stores this shape)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "estimated": self.estimated,
        }
