"""Ports for the servers the benchmarks and tests start in other processes, that no other
test and no outgoing connection takes.

Asking the kernel for a free port (bind to port 0, read it, close) and handing it to a
server started later races with everything else on the machine: the kernel hands the same
ephemeral range to every outgoing connection's local port and to every other bind to port
0, so in the gap the port can become a client socket's or another test worker's. With two
pytest workers starting real meshes, that happened ("127.0.0.1:33181 is already in use").

So ports come from below the ephemeral range (``net.ipv4.ip_local_port_range``), where the
kernel never picks one by itself, in a block of its own for each pytest-xdist worker, each
checked free (bound without ``SO_REUSEADDR``, so a port in TIME_WAIT counts as taken) and
never handed out twice in one process.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from collections.abc import Iterator

FLOOR = 10_000
"""The lowest port handed out: below it live well-known and registered services."""

_cursor: Iterator[int] | None = None
_mine: range | None = None
"""This process's block, or None where the kernel picks."""


def _ephemeral_start() -> int:
    """The lowest port the kernel picks by itself (32768 unless configured otherwise)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _block(start: int) -> range:
    """This process's share of [`FLOOR`, `start`): one block per xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    size = (start - FLOOR) // max(count, 1)
    return range(FLOOR + index * size, FLOOR + (index + 1) * size)


def _kernel_picks() -> Iterator[int]:
    """Ports the kernel picks: only where the ephemeral range leaves no room below it."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield int(s.getsockname()[1])


def _ports() -> Iterator[int]:
    """This process's block from a random place in it (so two runs at once seldom meet),
    round and round."""
    global _cursor, _mine
    if _cursor is None:
        block = _block(_ephemeral_start())
        if len(block) < 100:
            _cursor = _kernel_picks()
        else:
            _mine = block
            first = random.randrange(len(block))
            _cursor = itertools.cycle([*block[first:], *block[:first]])
    return _cursor


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> int:
    """The first of `n` consecutive ports, all free now, that this process hands to no one
    else until it has gone round its whole block."""
    ports = _ports()
    for _ in range(10_000):
        first = next(ports)
        run = range(first, first + n)
        if _mine is not None and run[-1] not in _mine:
            continue  # the run would reach into another worker's block
        if all(_is_free(p) for p in run):
            for _ in run[1:]:
                next(ports)  # the rest of the run is taken too
            return first
    raise RuntimeError(f"no {n} consecutive free ports")


def free_port() -> int:
    """A port no one listens on now, that this process hands to no one else."""
    return free_ports(1)


def dead_address() -> str:
    """A loopback address nothing listens on: for calls that must find no server."""
    return f"127.0.0.1:{free_port()}"
