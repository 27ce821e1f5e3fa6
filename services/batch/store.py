"""The durable home of batch jobs: batches, their items and results, uploaded files.

Every state change is one short transaction, so a process killed at any moment leaves
each item either as it was or with its result written: never half. An item's result is
written with the next number of its batch's result sequence (taken under the batch row's
lock, so numbers follow commit order), which is what a results stream's cursor counts.
Items are unique per batch by ``custom_id``. The same code runs on SQLite and PostgreSQL
(`backends`); `open_batch_store` picks one from the ledger's URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from llmesh.services.batch.backends import Backend, PostgresBackend, SqliteBackend
from llmesh.services.batch.model import (
    BatchMode,
    BatchRow,
    BatchState,
    Counts,
    DeadRow,
    FileRow,
    ItemState,
    PendingItem,
)
from llmesh.services.batch.native_store import NativeRows
from llmesh.services.batch.rows import b64, finish_item, trail_of, unb64
from llmesh.services.ledger.stores import sqlite_path

__all__ = ["BatchStore", "open_batch_store"]

_BATCH_COLUMNS = (
    "batch_id, tenant, key_id, state, mode, metadata, input_file_id, created_at, total, "
    "started_at, finished_at, status_detail, owner"
)
_INSERT_ITEM = (
    "INSERT INTO batch_items (batch_id, custom_id, position, input, state, updated_at) "
    "VALUES (?, ?, ?, ?, 'pending', ?)"
)


def _batch(row: Sequence[Any]) -> BatchRow:
    return BatchRow(
        batch_id=row[0],
        tenant=row[1],
        key_id=row[2],
        state=BatchState(row[3]),
        mode=BatchMode(row[4]),
        metadata=orjson.loads(row[5]),
        input_file_id=row[6],
        created_at=float(row[7]),
        total=int(row[8]),
        started_at=row[9],
        finished_at=row[10],
        status_detail=row[11],
        owner=row[12],
    )


class BatchStore(NativeRows):
    """Batches, items, results and files in the ledger database."""

    def __init__(self, backend: Backend) -> None:
        self._db = backend

    async def aclose(self) -> None:
        """Release the database connections (idempotent)."""
        await self._db.aclose()

    # files

    async def put_file(self, file: FileRow) -> None:
        """Store an uploaded file."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "INSERT INTO batch_files (file_id, tenant, filename, bytes, item_count, "
                "created_at, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
                file.file_id,
                file.tenant,
                file.filename,
                file.bytes,
                file.item_count,
                file.created_at,
                file.content,
            )

    async def get_file(self, file_id: str, *, content: bool = False) -> FileRow | None:
        """An uploaded file (its text only with `content`), or None."""
        body = "content" if content else "''"
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT file_id, tenant, filename, bytes, item_count, created_at, "
                f"{body} FROM batch_files WHERE file_id = ?",
                file_id,
            )
        if not rows:
            return None
        r = rows[0]
        return FileRow(r[0], r[1], r[2], int(r[3]), int(r[4]), float(r[5]), r[6])

    async def list_files(
        self, tenant: str | None, *, before: tuple[float, str] | None, limit: int
    ) -> list[FileRow]:
        """Uploaded files newest first (of `tenant`, or all when None), without their text,
        after the page mark `before` (created_at, file_id)."""
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND file_id < ?))")
            args.extend([before[0], before[0], before[1]])
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT file_id, tenant, filename, bytes, item_count, created_at "
                f"FROM batch_files {clause}"
                f"ORDER BY created_at DESC, file_id DESC LIMIT {int(limit)}",
                *args,
            )
        return [FileRow(r[0], r[1], r[2], int(r[3]), int(r[4]), float(r[5])) for r in rows]

    async def delete_file(self, file_id: str) -> bool:
        """Delete an uploaded file (its batches keep their own copies of the items);
        whether it was there."""
        async with self._db.transaction(write=True) as tx:
            deleted = await tx.execute("DELETE FROM batch_files WHERE file_id = ?", file_id)
        return bool(deleted)

    # batches

    async def create(self, batch: BatchRow, items: Sequence[tuple[str, bytes]]) -> None:
        """Store a batch and its items (custom_id, serialized `BatchItem`), all pending, in
        one transaction."""
        now = time.time()
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                f"INSERT INTO batches ({_BATCH_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch.batch_id,
                batch.tenant,
                batch.key_id,
                batch.state.value,
                batch.mode.value,
                orjson.dumps(dict(batch.metadata)).decode(),
                batch.input_file_id,
                batch.created_at,
                batch.total,
                batch.started_at,
                batch.finished_at,
                batch.status_detail,
                batch.owner,
            )
            rows = [(batch.batch_id, cid, i, b64(data), now) for i, (cid, data) in enumerate(items)]
            for start in range(0, len(rows), 500):
                await tx.executemany(_INSERT_ITEM, rows[start : start + 500])

    async def get(self, batch_id: str) -> BatchRow | None:
        """A batch, or None."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?", batch_id
            )
        return _batch(rows[0]) if rows else None

    async def counts(self, batch_id: str) -> Counts:
        """A batch's items by state."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT state, COUNT(*) FROM batch_items WHERE batch_id = ? GROUP BY state",
                batch_id,
            )
        return Counts({ItemState(s): int(n) for s, n in rows})

    async def list_batches(
        self, tenant: str | None, *, before: tuple[float, str] | None, limit: int
    ) -> list[BatchRow]:
        """Batches newest first (of `tenant`, or all when None), after the page mark
        `before` (created_at, batch_id)."""
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND batch_id < ?))")
            args.extend([before[0], before[0], before[1]])
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_BATCH_COLUMNS} FROM batches {clause}"
                f"ORDER BY created_at DESC, batch_id DESC LIMIT {int(limit)}",
                *args,
            )
        return [_batch(r) for r in rows]

    async def runnable(self) -> list[BatchRow]:
        """Batches that need an executor (queued, in progress, cancelling), oldest first."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_BATCH_COLUMNS} FROM batches "
                "WHERE state IN ('queued', 'in_progress', 'cancelling') ORDER BY created_at"
            )
        return [_batch(r) for r in rows]

    async def set_state(
        self,
        batch_id: str,
        state: BatchState,
        *,
        expect: frozenset[BatchState] | None = None,
        detail: str | None = None,
        started: bool = False,
        finished: bool = False,
        reopen: bool = False,
    ) -> bool:
        """Move a batch to `state` if it is in one of `expect` (any when None); whether it
        moved. `started` stamps started_at (once), `finished` finished_at, `reopen` clears
        finished_at; `detail` replaces status_detail."""
        sets = ["state = ?"]
        args: list[Any] = [state.value]
        now = time.time()
        if detail is not None:
            sets.append("status_detail = ?")
            args.append(detail)
        if started:
            sets.append("started_at = COALESCE(started_at, ?)")
            args.append(now)
        if finished:
            sets.append("finished_at = ?")
            args.append(now)
        if reopen:
            sets.append("finished_at = NULL")
        args.append(batch_id)
        where = "batch_id = ?"
        if expect is not None:
            names = sorted(s.value for s in expect)
            where += f" AND state IN ({', '.join('?' for _ in names)})"
            args.extend(names)
        async with self._db.transaction(write=True) as tx:
            changed = await tx.execute(f"UPDATE batches SET {', '.join(sets)} WHERE {where}", *args)
        return bool(changed > 0)

    async def complete_if_done(self, batch_id: str) -> bool:
        """Mark an in-progress batch COMPLETED if none of its items is pending or running,
        in one statement (an item retried meanwhile keeps it open); whether it was."""
        async with self._db.transaction(write=True) as tx:
            changed = await tx.execute(
                "UPDATE batches SET state = 'completed', finished_at = ? "
                "WHERE batch_id = ? AND state = 'in_progress' AND NOT EXISTS ("
                "SELECT 1 FROM batch_items WHERE batch_id = ? "
                "AND state IN ('pending', 'running'))",
                time.time(),
                batch_id,
                batch_id,
            )
        return bool(changed > 0)

    async def claim(self, batch_id: str, me: str, dead: Sequence[str] = ()) -> bool:
        """Make instance `me` the executor of a batch unless another live instance is; its
        items left running by a previous executor go back to pending (but those a
        provider's native batch holds, whose results are still to be read). Whether `me`
        owns it."""
        async with self._db.transaction(write=True) as tx:
            rows = await tx.fetch("SELECT owner FROM batches WHERE batch_id = ?", batch_id)
            if not rows:
                return False
            owner = rows[0][0]
            if owner == me:
                return True
            if owner and owner not in dead and owner in await tx.live_instances():
                return False
            await tx.execute(
                "UPDATE batches SET owner = ? WHERE batch_id = ? AND owner = ?",
                me,
                batch_id,
                owner,
            )
            await tx.execute(
                "UPDATE batch_items SET state = 'pending', updated_at = ? "
                "WHERE batch_id = ? AND state = 'running' AND native_batch = ''",
                time.time(),
                batch_id,
            )
        return True

    async def release(self, batch_id: str, me: str) -> None:
        """Give up the executor role of a batch (at shutdown, or when it ends)."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "UPDATE batches SET owner = '' WHERE batch_id = ? AND owner = ?", batch_id, me
            )

    # items

    async def take_pending(self, batch_id: str, limit: int) -> list[PendingItem]:
        """Up to `limit` pending items in submission order, now marked running."""
        async with self._db.transaction(write=True) as tx:
            rows = await tx.fetch(
                "SELECT custom_id, input, attempts, trail FROM batch_items "
                "WHERE batch_id = ? AND state = 'pending' ORDER BY position "
                f"LIMIT {int(limit)}",
                batch_id,
            )
            if rows:
                now = time.time()
                await tx.executemany(
                    "UPDATE batch_items SET state = 'running', updated_at = ? "
                    "WHERE batch_id = ? AND custom_id = ?",
                    [(now, batch_id, r[0]) for r in rows],
                )
        return [PendingItem(r[0], unb64(r[1]), int(r[2]), trail_of(r[3])) for r in rows]

    async def record_attempt(
        self, batch_id: str, custom_id: str, attempts: int, trail: Sequence[Mapping[str, object]]
    ) -> None:
        """Keep an item's failed attempt (it stays running, to be tried again)."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "UPDATE batch_items SET attempts = ?, trail = ?, updated_at = ? "
                "WHERE batch_id = ? AND custom_id = ?",
                attempts,
                orjson.dumps(list(trail)).decode(),
                time.time(),
                batch_id,
                custom_id,
            )

    async def requeue(self, batch_id: str, custom_ids: Sequence[str]) -> None:
        """Put running items back to pending (their batch paused, or was cancelled while
        they waited)."""
        async with self._db.transaction(write=True) as tx:
            await tx.executemany(
                "UPDATE batch_items SET state = 'pending', updated_at = ? "
                "WHERE batch_id = ? AND custom_id = ? AND state = 'running'",
                [(time.time(), batch_id, c) for c in custom_ids],
            )

    async def finish(
        self,
        batch_id: str,
        custom_id: str,
        state: ItemState,
        result: bytes,
        *,
        attempts: int,
        trail: Sequence[Mapping[str, object]] = (),
    ) -> int | None:
        """Write a running item's result (a serialized `BatchItemResult`) and final state,
        with the batch's next result number; that number, or None when the item was not
        running (its result is already written: never twice)."""
        async with self._db.transaction(write=True) as tx:
            return await finish_item(tx, batch_id, custom_id, state, result, attempts, trail)

    async def finish_many(
        self,
        batch_id: str,
        results: Sequence[tuple[str, ItemState, bytes, int]],
    ) -> int:
        """Write several running items' results (custom_id, state, result, attempts) in one
        transaction; how many were written."""
        written = 0
        async with self._db.transaction(write=True) as tx:
            for custom_id, state, result, attempts in results:
                seq = await finish_item(tx, batch_id, custom_id, state, result, attempts, None)
                written += seq is not None
        return written

    async def cancel_pending(self, batch_id: str, result: Callable[[str, int], bytes]) -> int:
        """Cancel every pending item of a batch, each with the result `result` makes for it
        from its custom_id and attempts so far (so that result streams and files list it),
        in one transaction: an item is cancelled, and its result written, once; how many."""
        async with self._db.transaction(write=True) as tx:
            rows = await tx.fetch(
                "SELECT custom_id, attempts FROM batch_items "
                "WHERE batch_id = ? AND state = 'pending' ORDER BY custom_id",
                batch_id,
            )
            for custom_id, attempts in rows:
                await tx.execute(
                    "UPDATE batch_items SET state = 'running' WHERE batch_id = ? AND custom_id = ?",
                    batch_id,
                    custom_id,
                )
                done = int(attempts or 0)
                await finish_item(
                    tx,
                    batch_id,
                    custom_id,
                    ItemState.CANCELLED,
                    result(custom_id, done),
                    done,
                    None,
                )
        return len(rows)

    async def results_after(self, batch_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Results numbered above `after`, in order: (number, serialized result)."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT result_seq, result FROM batch_items "
                "WHERE batch_id = ? AND result_seq > ? ORDER BY result_seq "
                f"LIMIT {int(limit)}",
                batch_id,
                after,
            )
        return [(int(r[0]), unb64(r[1])) for r in rows]

    async def dead_letters(self, batch_id: str, after: str, limit: int) -> list[DeadRow]:
        """Dead items with a custom_id above `after`, in custom_id order."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT custom_id, input, result, trail, updated_at FROM batch_items "
                "WHERE batch_id = ? AND state = 'dead' AND custom_id > ? ORDER BY custom_id "
                f"LIMIT {int(limit)}",
                batch_id,
                after,
            )
        return [DeadRow(r[0], unb64(r[1]), unb64(r[2]), trail_of(r[3]), float(r[4])) for r in rows]

    async def retry_dead(self, batch_id: str, custom_id: str | None) -> int:
        """Put one dead item (or all, when None) back to pending with a fresh attempt count
        (its trail kept); how many."""
        args: list[Any] = [time.time(), batch_id]
        only = ""
        if custom_id is not None:
            only = " AND custom_id = ?"
            args.append(custom_id)
        async with self._db.transaction(write=True) as tx:
            changed = await tx.execute(
                "UPDATE batch_items SET state = 'pending', attempts = 0, result = NULL, "
                "result_seq = NULL, native_batch = '', updated_at = ? "
                f"WHERE batch_id = ? AND state = 'dead'{only}",
                *args,
            )
        return int(changed)

    async def item_state(self, batch_id: str, custom_id: str) -> ItemState | None:
        """One item's state, or None when the batch has no such item."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT state FROM batch_items WHERE batch_id = ? AND custom_id = ?",
                batch_id,
                custom_id,
            )
        return ItemState(rows[0][0]) if rows else None


def open_batch_store(url: str) -> BatchStore:
    """The batch store in the ledger database at `url` (``sqlite:///...`` or
    ``postgresql://...[?schema=name]``, as `llmesh.services.ledger.open_store` reads it).
    Nothing is opened until first use."""
    path = sqlite_path(url)
    if path is not None:
        return BatchStore(SqliteBackend(path))
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k in ("schema", "search_path")), None)
        rest = urlencode([(k, v) for k, v in query if k not in ("schema", "search_path")])
        return BatchStore(
            PostgresBackend(urlunsplit(parts._replace(query=rest)), schema=schema or None)
        )
    raise ValueError(f"unsupported ledger URL {url!r}: use sqlite:/// or postgresql://")
