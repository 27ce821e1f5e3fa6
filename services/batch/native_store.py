"""The batch store's rows about providers' native batches: which native batch holds which
items, how each ended, and the items none holds yet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llmesh.services.batch.model import ItemState, NativeRow, PendingItem
from llmesh.services.batch.rows import finish_item, trail_of, unb64

if TYPE_CHECKING:
    from llmesh.services.batch.backends import Backend

__all__ = ["NativeRows"]


class NativeRows:
    """The native-batch part of `BatchStore`."""

    _db: Backend

    async def add_native(
        self, batch_id: str, provider: str, provider_batch_id: str, custom_ids: Sequence[str]
    ) -> None:
        """Record a provider's native batch and the items it holds."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "INSERT INTO batch_native (batch_id, provider_batch_id, provider, state) "
                "VALUES (?, ?, ?, 'in_progress')",
                batch_id,
                provider_batch_id,
                provider,
            )
            await tx.executemany(
                "UPDATE batch_items SET native_batch = ? WHERE batch_id = ? AND custom_id = ?",
                [(provider_batch_id, batch_id, c) for c in custom_ids],
            )

    async def reserve_native(
        self, batch_id: str, provider: str, key: str, custom_ids: Sequence[str]
    ) -> None:
        """Before a submission: record its key as a native batch in state ``submitting``
        holding the items, so that a restart looks the submission up at the provider by
        its key rather than submitting the items again."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "INSERT INTO batch_native (batch_id, provider_batch_id, provider, state) "
                "VALUES (?, ?, ?, 'submitting')",
                batch_id,
                key,
                provider,
            )
            await tx.executemany(
                "UPDATE batch_items SET native_batch = ? WHERE batch_id = ? AND custom_id = ?",
                [(key, batch_id, c) for c in custom_ids],
            )

    async def adopt_native(self, batch_id: str, key: str, provider_batch_id: str) -> None:
        """The submission `key` is the provider's batch `provider_batch_id`: its items are
        that batch's, and run."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "UPDATE batch_native SET provider_batch_id = ?, state = 'in_progress' "
                "WHERE batch_id = ? AND provider_batch_id = ? AND state = 'submitting'",
                provider_batch_id,
                batch_id,
                key,
            )
            await tx.execute(
                "UPDATE batch_items SET native_batch = ?, state = CASE WHEN state = 'pending' "
                "THEN 'running' ELSE state END WHERE batch_id = ? AND native_batch = ?",
                provider_batch_id,
                batch_id,
                key,
            )

    async def release_native(self, batch_id: str, key: str) -> None:
        """The submission `key` never reached the provider: its items are unsubmitted."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "DELETE FROM batch_native WHERE batch_id = ? AND provider_batch_id = ? "
                "AND state = 'submitting'",
                batch_id,
                key,
            )
            await tx.execute(
                "UPDATE batch_items SET native_batch = '' WHERE batch_id = ? AND native_batch = ?",
                batch_id,
                key,
            )

    async def natives(self, batch_id: str) -> list[NativeRow]:
        """The native batches of a batch."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT provider_batch_id, provider, state FROM batch_native "
                "WHERE batch_id = ? ORDER BY provider_batch_id",
                batch_id,
            )
        return [NativeRow(r[0], r[1], r[2]) for r in rows]

    async def set_native_state(self, batch_id: str, provider_batch_id: str, state: str) -> None:
        """Record how a native batch ended."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "UPDATE batch_native SET state = ? WHERE batch_id = ? AND provider_batch_id = ?",
                state,
                batch_id,
                provider_batch_id,
            )

    async def unsubmitted(self, batch_id: str) -> list[PendingItem]:
        """Items not yet part of any native batch and not finished, in order."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT custom_id, input, attempts, trail FROM batch_items "
                "WHERE batch_id = ? AND native_batch = '' AND state IN ('pending', 'running') "
                "ORDER BY position",
                batch_id,
            )
        return [PendingItem(r[0], unb64(r[1]), int(r[2]), trail_of(r[3])) for r in rows]

    async def mark_running(self, batch_id: str, provider_batch_id: str) -> None:
        """Mark the pending items of a native batch running."""
        async with self._db.transaction(write=True) as tx:
            await tx.execute(
                "UPDATE batch_items SET state = 'running' "
                "WHERE batch_id = ? AND native_batch = ? AND state = 'pending'",
                batch_id,
                provider_batch_id,
            )

    async def native_item_count(self, batch_id: str, provider_batch_id: str) -> int:
        """How many items a native batch (or a submission's key) holds."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT COUNT(*) FROM batch_items WHERE batch_id = ? AND native_batch = ?",
                batch_id,
                provider_batch_id,
            )
        return int(rows[0][0])

    async def native_item_input(self, batch_id: str, provider_batch_id: str) -> bytes | None:
        """The input of one item of a native batch, or None when it holds none."""
        async with self._db.transaction(write=False) as tx:
            rows = await tx.fetch(
                "SELECT input FROM batch_items WHERE batch_id = ? AND native_batch = ? LIMIT 1",
                batch_id,
                provider_batch_id,
            )
        return unb64(rows[0][0]) if rows else None

    async def fail_unfinished(
        self,
        batch_id: str,
        provider_batch_id: str,
        state: ItemState,
        result: Callable[[str], bytes],
    ) -> int:
        """Give every unfinished item of a native batch the same final result (the batch
        failed or expired); how many."""
        async with self._db.transaction(write=True) as tx:
            rows = await tx.fetch(
                "SELECT custom_id FROM batch_items WHERE batch_id = ? AND native_batch = ? "
                "AND state IN ('pending', 'running')",
                batch_id,
                provider_batch_id,
            )
            for (custom_id,) in rows:
                await tx.execute(
                    "UPDATE batch_items SET state = 'running' WHERE batch_id = ? AND custom_id = ?",
                    batch_id,
                    custom_id,
                )
                await finish_item(tx, batch_id, custom_id, state, result(custom_id), 1, None)
        return len(rows)

    async def fail_items(
        self,
        batch_id: str,
        custom_ids: Sequence[str],
        state: ItemState,
        result: Callable[[str], bytes],
    ) -> int:
        """Give unfinished items the final result `result` makes for each (they could not be
        submitted); how many."""
        done = 0
        async with self._db.transaction(write=True) as tx:
            for custom_id in custom_ids:
                moved = await tx.execute(
                    "UPDATE batch_items SET state = 'running' WHERE batch_id = ? "
                    "AND custom_id = ? AND state IN ('pending', 'running')",
                    batch_id,
                    custom_id,
                )
                if moved:
                    await finish_item(tx, batch_id, custom_id, state, result(custom_id), 1, None)
                    done += 1
        return done
