"""Where the ledger keeps its records: the `LedgerStore` interface and `open_store`.

Every store holds exactly one row per call (request_id is unique; attempts are JSON),
keeps the calls in flight apart (`instances`), and creates and migrates its own schema on
first use. `SqliteStore` is the embedded default;
`PostgresStore` serves several hosts sharing one ledger.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from llmesh.services.ledger.instances import Instance, InstanceRow
from llmesh.services.ledger.postgres_store import PostgresStore
from llmesh.services.ledger.queries import UsageTotalRow
from llmesh.services.ledger.records import UsageRecord
from llmesh.services.ledger.responses import ResponseStore
from llmesh.services.ledger.sqlite_store import SqliteStore

__all__ = [
    "LedgerStore",
    "PostgresStore",
    "SqliteStore",
    "open_response_store",
    "open_store",
    "sqlite_path",
]


@runtime_checkable
class LedgerStore(Protocol):
    """A durable home for usage records."""

    async def write(
        self,
        records: Sequence[UsageRecord],
        starts: Sequence[UsageRecord] = (),
        *,
        owner: str = "",
        ended: Sequence[str] = (),
    ) -> None:
        """Store the records atomically; writing a request_id again replaces its row.

        In the same transaction, `starts` become calls in flight of instance `owner` (the
        rows they would be if that instance died) and the calls `ended` names stop being so.
        """
        ...

    async def heartbeat(self, instance: Instance, lease: float) -> None:
        """Register `instance` or renew its lease for `lease` seconds."""
        ...

    async def retire(self, instance_id: str) -> None:
        """Forget an instance that stops."""
        ...

    async def instances(self) -> list[InstanceRow]:
        """Every registered instance."""
        ...

    async def close_interrupted(self, me: str, dead: Sequence[str] = ()) -> int:
        """Close the calls in flight of instances (but `me`) whose lease expired or that
        `dead` names as ``interrupted`` rows; how many were closed."""
        ...

    async def started_calls(self) -> int:
        """How many calls are in flight."""
        ...

    async def totals(
        self,
        group_by: Sequence[str],
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
    ) -> list[UsageTotalRow]:
        """Totals grouped by ``tenant``, ``key``, ``model``, ``day`` (in order), sorted.

        `since` and `until` are unix seconds (``since <= ts < until``); `tenant` keeps
        only that tenant's calls.
        """
        ...

    async def recent(self, limit: int, tenant: str | None = None) -> list[UsageRecord]:
        """The latest `limit` records by start time, newest first; `tenant` keeps only that
        tenant's calls."""
        ...

    async def count(self) -> int:
        """How many calls the ledger holds."""
        ...

    async def get(self, request_id: str) -> UsageRecord | None:
        """The record of one call, or None (a lookup by key: cheap at any size)."""
        ...

    async def aclose(self) -> None:
        """Release the store's connections and threads (idempotent)."""
        ...

    def __await__(self) -> Generator[Any, None, LedgerStore]:
        """Open (connect and migrate) now rather than on first use; the store itself."""
        ...


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL (three slashes: relative, four: absolute), else None."""
    if not url.startswith("sqlite:"):
        return None
    rest = url[len("sqlite:") :]
    if not rest.startswith("///"):
        raise ValueError(f"a SQLite ledger URL looks like sqlite:///usage.db, got {url!r}")
    path = rest[3:]
    if not path:
        raise ValueError(f"the SQLite ledger URL names no file: {url!r}")
    return path


def open_store(url: str) -> LedgerStore:
    """The store a URL names: ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``sqlite:///:memory:``, or ``postgresql://user@host:port/db[?schema=name]``.

    Nothing is opened yet: the store connects and migrates on first use, or at once with
    ``store = await open_store(url)``.
    """
    return _open(url)


def open_response_store(url: str) -> ResponseStore:
    """The stored responses of the ledger database at `url` (see `open_store`)."""
    return _open(url)


def _open(url: str) -> SqliteStore | PostgresStore:
    path = sqlite_path(url)
    if path is not None:
        return SqliteStore(path)
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qsl(parts.query, keep_blank_values=True)
        # ``search_path`` is accepted too: one database URL serves the ledger and the keys
        schema = next((v for k, v in query if k in ("schema", "search_path")), None)
        rest = urlencode([(k, v) for k, v in query if k not in ("schema", "search_path")])
        return PostgresStore(urlunsplit(parts._replace(query=rest)), schema=schema or None)
    raise ValueError(f"unsupported usage ledger URL {url!r}: use sqlite:/// or postgresql://")
