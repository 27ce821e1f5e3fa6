"""``GET /v1/responses/{id}/input_items``: a stored response's input items in OpenAI's list
shape (pure functions).

The items are this request's ``input`` (not those of a ``previous_response_id`` chain), as
stored with the response: each gets an ``id`` when it is saved (the one the caller gave, or
a fresh one) so pages can continue ``after`` it, and a message's string ``content`` is shown
as one ``input_text`` (``output_text`` for an assistant) part, as OpenAI lists it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from llmesh.services.common.errors import invalid

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "listed_items", "page"]

DEFAULT_LIMIT = 20
"""Items on a page when the request sends no ``limit`` (OpenAI's default)."""
MAX_LIMIT = 100
"""The largest ``limit`` a request may ask for."""

_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def _listed(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = dict(item)
    kind = out.setdefault("type", "message")
    if not isinstance(out.get("id"), str) or not out["id"]:
        out["id"] = f"{_PREFIX.get(kind, 'item')}_{secrets.token_hex(16)}"
    if kind == "message" and isinstance(out.get("content"), str):
        part = "output_text" if out.get("role") == "assistant" else "input_text"
        text: dict[str, Any] = {"type": part, "text": out["content"]}
        if part == "output_text":
            text["annotations"] = []
        out["content"] = [text]
    if kind == "message":
        out.setdefault("status", "completed")
    return out


def listed_items(items: Sequence[Any]) -> list[Any]:
    """`items` as they are stored for listing: each with an id and message parts."""
    return [_listed(item) for item in items]


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def page(items: Sequence[Any], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of `items` for the query's ``limit``, ``order`` (``desc``, the default, lists
    the last item first) and ``after`` (an item id: the page starts past it)."""
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order", "must be asc or desc")
    ordered = list(items) if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") if isinstance(item, dict) else None for item in ordered]
        if after not in ids:
            raise invalid("after", f"no input item {after!r} in this response")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
