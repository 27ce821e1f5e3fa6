"""Call ids: the one place llmesh makes a request id."""

from __future__ import annotations

import os

__all__ = ["new_request_id"]


def new_request_id() -> str:
    """A fresh, unique call id: ``req_`` and 128 random bits in hex (a uuid4 carries 122)."""
    return "req_" + os.urandom(16).hex()
