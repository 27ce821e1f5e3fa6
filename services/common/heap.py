"""Garbage-collector settings for long-running services.

A service imports and builds most of its objects once, at start-up (modules, protobuf
descriptors, the gRPC server, connection pools). Left in the collector's generations they
are traversed again by every full collection, for as long as the process lives. After
start-up, `settle` collects once and moves everything that survived to the permanent
generation (`gc.freeze`), and raises the first generation's threshold so that the many
short-lived objects of a call (events, messages, futures) are collected in larger, rarer
batches. Objects are still freed by reference counting the moment they are released; only
cycles wait for a collection.
"""

from __future__ import annotations

import gc
import os

DEFAULT_THRESHOLDS = (20_000, 20, 20)
"""Allocations before a young collection, and young (then middle) collections before an
older one. Python's own defaults are (700, 10, 10)."""


def settle(thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS) -> None:
    """Freeze what start-up built and set the thresholds (``LLMESH_GC=default`` skips both)."""
    if os.environ.get("LLMESH_GC", "") == "default":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
