"""CPU quotas for the processes under test: a share of one CPU each, through cgroups.

On a machine with no spare cores, pinning one worker per core leaves the load generator and
the upstream fighting the workers for CPU, and the more workers, the less CPU they get. A
quota instead gives every worker the same share of a CPU (the kernel's CFS bandwidth control:
``cpu.max`` in cgroup v2, ``cpu.cfs_quota_us`` in v1), so one worker at 0.5 CPU and two at
0.5 each compare like one core and two, with the rest of the machine left to the load.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["CpuQuota", "cpu_quota_root"]

PERIOD_US = 100_000
"""The bandwidth period: a quota of 0.5 CPU is 50 ms of CPU time every 100 ms."""

_V2 = Path("/sys/fs/cgroup")
_V1 = Path("/sys/fs/cgroup/cpu")


def cpu_quota_root() -> tuple[Path, int] | None:
    """Where new cgroups with a CPU controller can be made (and the cgroup version), or None."""
    subtree = _V2 / "cgroup.subtree_control"
    if subtree.exists() and "cpu" in subtree.read_text().split():
        return (_V2, 2) if os.access(_V2, os.W_OK) else None
    if (_V1 / "cpu.cfs_quota_us").exists() and os.access(_V1, os.W_OK):
        return _V1, 1
    return None


class CpuQuota:
    """One cgroup holding processes to `cpus` of a CPU; `close` removes it once they exit."""

    def __init__(self, name: str, cpus: float) -> None:
        found = cpu_quota_root()
        if found is None:
            raise RuntimeError(
                "no writable cgroup with a cpu controller (/sys/fs/cgroup): run as root, or "
                "without --workers-quota"
            )
        root, version = found
        self.path = root / f"{name}-{os.getpid()}"
        self.path.mkdir(exist_ok=True)
        quota = max(int(cpus * PERIOD_US), 1000)
        if version == 2:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled_s(self) -> float:
        """Seconds the cgroup's processes waited for their quota so far."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_usec":
                return int(value) / 1e6
            if key == "throttled_time":  # v1: nanoseconds
                return int(value) / 1e9
        return 0.0

    def close(self) -> None:
        """Remove the cgroup (its processes must have exited)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()
