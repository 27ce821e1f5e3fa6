"""The ``batch`` section: how the orchestrator runs batch jobs it executes itself."""

from __future__ import annotations

from dataclasses import dataclass

from llmesh.services.common.config_fields import bounded, check_fields

__all__ = ["BatchConfig"]


@dataclass(frozen=True)
class BatchConfig:
    """``batch``: the mesh-run executor's pace and retries, and native batch polling.

    Mesh-run items go through the normal call path at the ``batch`` priority tier, under
    their tenant's rate limits and budget; these settings cap them further, per
    orchestrator process, across all its batches.
    """

    enabled: bool = True
    """Run batches in this orchestrator (off: the BatchService still stores and answers,
    but no process of this configuration executes items)."""
    concurrency: int = bounded(8, ge=1)
    """The most items in flight at once, over every batch of the process."""
    items_per_second: float = bounded(0.0, ge=0)
    """The most items started per second, over every batch of the process; 0: no limit."""
    max_attempts: int = bounded(3, ge=1)
    """Attempts per item (each one a whole call through the path, with its own retries and
    fallbacks) before a retryable failure makes it a dead letter."""
    item_timeout: float = bounded(600.0, gt=0)
    """Seconds one attempt at an item may take, through the whole call path."""
    retry_backoff: float = bounded(1.0, ge=0)
    """Seconds before an item's second attempt; doubled for each later one."""
    poll_interval: float = bounded(2.0, gt=0)
    """Seconds between scans of the database for batches to take over (created by another
    process, or left by one that died)."""
    native_poll_interval: float = bounded(30.0, gt=0)
    """Seconds between status polls of a provider's native batch at first; the wait grows
    by half each poll up to `native_poll_max`."""
    native_poll_max: float = bounded(300.0, gt=0)
    """The longest wait between two polls of a native batch."""
    max_items: int = bounded(50_000, ge=1)
    """The most items one batch may hold."""
    max_file_bytes: int = bounded(200 * 1024 * 1024, ge=1)
    """The largest batch input file accepted, in bytes."""

    def __post_init__(self) -> None:
        check_fields(self)
