"""Row helpers the batch store's modules share: encoded columns, and writing a result."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from llmesh.services.batch.backends import Tx
from llmesh.services.batch.model import ItemState

__all__ = ["b64", "finish_item", "trail_of", "unb64"]


def b64(data: bytes) -> str:
    """Bytes (a serialized proto) as the text column holds them."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    """The bytes of a text column (empty for NULL)."""
    return base64.b64decode(text) if text else b""


def trail_of(text: str) -> tuple[Mapping[str, object], ...]:
    """An item's attempt trail from its JSON column."""
    return tuple(orjson.loads(text or "[]"))


async def finish_item(
    tx: Tx,
    batch_id: str,
    custom_id: str,
    state: ItemState,
    result: bytes,
    attempts: int,
    trail: Sequence[Mapping[str, object]] | None,
) -> int | None:
    """In `tx`: write a running item's result with its batch's next result number (taken
    under the batch row's lock); that number, or None when the item was not running."""
    running = await tx.fetch(
        "SELECT 1 FROM batch_items WHERE batch_id = ? AND custom_id = ? AND state = 'running'",
        batch_id,
        custom_id,
    )
    if not running:
        return None
    seq_rows = await tx.fetch(
        "UPDATE batches SET next_seq = next_seq + 1 WHERE batch_id = ? RETURNING next_seq",
        batch_id,
    )
    seq = int(seq_rows[0][0])
    sets = "state = ?, result = ?, result_seq = ?, attempts = ?, updated_at = ?"
    args: list[Any] = [state.value, b64(result), seq, attempts, time.time()]
    if trail is not None:
        sets += ", trail = ?"
        args.append(orjson.dumps(list(trail)).decode())
    await tx.execute(
        f"UPDATE batch_items SET {sets} WHERE batch_id = ? AND custom_id = ?",
        *args,
        batch_id,
        custom_id,
    )
    return seq
