"""Who owns the calls in flight: each ledger writer's instance, its lease, and its liveness.

A call whose request has left for a provider has a row in `STARTS_TABLE` naming the
instance (one process's ledger writer) that serves it. The instance renews a lease in
`INSTANCES_TABLE` by heartbeats; any instance sweeping the ledger closes the started calls
of every instance whose lease expired as ``interrupted``, and, without waiting for the
lease, those of an instance on the same machine whose process is gone (same boot and pid
namespace, its pid no longer running). A live replica's calls are never closed.

The SQL here is shared by both stores; `{now}` is the dialect's clock (the client's for
SQLite, which only processes of one machine share; the server's for PostgreSQL, so the
hosts' clocks need not agree).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmesh.services.ledger.schema import COLUMNS, INSTANCES_TABLE, STARTS_TABLE, TABLE

__all__ = [
    "Instance",
    "InstanceRow",
    "close_statements",
    "dead_here",
    "heartbeat_sql",
    "local_node",
    "pid_alive",
    "start_upsert_sql",
]


def local_node() -> str:
    """This machine's boot id and pid namespace: processes with the same node see each
    other's pids. Empty where /proc does not tell (then only leases decide)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{pidns}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass(frozen=True, slots=True)
class Instance:
    """One process's ledger writer, as the other processes sharing the ledger see it."""

    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique per process start."""
    host: str = field(default_factory=socket.gethostname)
    """The host name, for people reading the table."""
    node: str = field(default_factory=local_node)
    """See `local_node`."""
    pid: int = field(default_factory=os.getpid)
    """The process id on `node`."""
    started_at: float = field(default_factory=time.time)
    """When the process started writing, in unix seconds."""


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """An instance as `INSTANCES_TABLE` holds it (what liveness checks need)."""

    instance_id: str
    node: str
    pid: int


def dead_here(rows: Sequence[InstanceRow], me: str, node: str | None = None) -> list[str]:
    """The instances of `rows` on this node (other than `me`) whose process is gone."""
    node = local_node() if node is None else node
    if not node:
        return []
    return [
        r.instance_id
        for r in rows
        if r.instance_id != me and r.node == node and not pid_alive(r.pid)
    ]


def start_upsert_sql(placeholder: Sequence[str]) -> str:
    """INSERT of one start row (`COLUMNS`, then the owner) replacing one with the same id."""
    columns = [*COLUMNS, "owner"]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return (
        f"INSERT INTO {STARTS_TABLE} ({', '.join(columns)}) VALUES ({', '.join(placeholder)}) "
        f"ON CONFLICT (request_id) DO UPDATE SET {updates}"
    )


def heartbeat_sql(placeholder: Sequence[str], now: str) -> str:
    """Register or renew an instance: (id, host, node, pid, started_at, lease seconds)."""
    p = placeholder
    return (
        f"INSERT INTO {INSTANCES_TABLE} (instance_id, host, node, pid, started_at, lease_until) "
        f"VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}, {p[4]}, {now} + {p[5]}) "
        "ON CONFLICT (instance_id) DO UPDATE SET lease_until = excluded.lease_until"
    )


def close_statements(me: str, now: str, *, returning: bool) -> list[str]:
    """The statements closing the started calls of instances without a live lease (`me`'s
    excepted) as usage rows, then forgetting those instances.

    With `returning` (PostgreSQL), the start rows are deleted and inserted in one statement,
    so a row written between two statements cannot be lost; without it (SQLite) the caller
    holds the database's write lock across the statements.
    """
    cols = ", ".join(COLUMNS)
    orphaned = (
        f"owner <> {me} AND owner NOT IN "
        f"(SELECT instance_id FROM {INSTANCES_TABLE} WHERE lease_until >= {now})"
    )
    forget = f"DELETE FROM {INSTANCES_TABLE} WHERE lease_until < {now} AND instance_id <> {me}"
    if returning:
        return [
            f"WITH gone AS (DELETE FROM {STARTS_TABLE} WHERE {orphaned} RETURNING {cols}) "
            f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM gone "
            "ON CONFLICT (request_id) DO NOTHING",
            forget,
        ]
    return [
        f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM {STARTS_TABLE} WHERE {orphaned} "
        "ON CONFLICT (request_id) DO NOTHING",
        f"DELETE FROM {STARTS_TABLE} WHERE {orphaned}",
        forget,
    ]
