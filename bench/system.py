"""What the machine is, how processes are pinned to cores, and what they cost (from /proc)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Pinning:
    """Which cores the services under test and the load side run on, if pinned at all."""

    service_core: int | None
    """The core of the orchestrator and gateway; None when unpinned."""
    load_core: int | None
    """The core of the upstream and the load generator; None when unpinned."""
    note: str
    """How the processes were placed, for the report."""

    def prefix(self, core: int | None) -> list[str]:
        """The ``taskset`` prefix of a command to run on `core` (empty when unpinned)."""
        return [] if core is None else ["taskset", "-c", str(core)]

    @classmethod
    def detect(cls) -> Pinning:
        """Services on core 0, load and upstream on core 1, when taskset and 2 cores exist."""
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if shutil.which("taskset") is None:
            return cls(None, None, "unpinned: taskset is not installed")
        if len(cores) < 2:
            return cls(None, None, f"unpinned: only {len(cores)} core(s) available")
        service, load = cores[0], cores[1]
        return cls(service, load, f"llmesh on core {service}; upstream and load on core {load}")

    def pin_self(self) -> None:
        """Move the calling process (before it starts threads) to the load core."""
        if self.load_core is not None:
            os.sched_setaffinity(0, {self.load_core})


def machine_info() -> dict[str, Any]:
    """CPU model, core count, Python version, OS and the date, for the report."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def rss_mib(pid: int) -> float | None:
    """The resident set size of `pid` in MiB (VmRSS), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds `pid` has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS
