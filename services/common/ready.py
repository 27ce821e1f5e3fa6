"""Telling a supervisor that a service serves now (what `llmesh up` waits for).

The supervisor passes the write end of a pipe and names it in ``LLMESH_READY_FD``; the
service writes one line once it accepts calls. With N workers on one port, a connect probe
could not tell which of them answered. Nothing here imports the rest of the mesh.
"""

from __future__ import annotations

import os

__all__ = ["READY_FD", "notify_ready"]

READY_FD = "LLMESH_READY_FD"
"""The variable naming the pipe a supervised process writes to once it serves."""


def notify_ready() -> None:
    """Tell the supervisor (if any) that this process serves now; once, then forgotten."""
    fd = os.environ.pop(READY_FD, None)
    if fd is None or not fd.isdigit():
        return
    try:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))
    except OSError:  # the supervisor is gone: nothing to tell
        pass
