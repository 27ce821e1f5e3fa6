"""Checks and body building shared by the provider batch clients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmesh.services.batch.native_seam import NativeItem
from llmesh.services.common.errors import LlmeshError, Reason

__all__ = ["check_items", "invalid_items", "item_body"]


def invalid_items(message: str) -> LlmeshError:
    """A batch llmesh cannot submit as asked."""
    return LlmeshError(Reason.INVALID_REQUEST, message)


def check_items(items: Sequence[NativeItem]) -> None:
    """Refuse an empty batch and repeated custom ids."""
    if not items:
        raise invalid_items("a batch needs at least one item")
    seen: set[str] = set()
    for item in items:
        if item.custom_id in seen:
            raise invalid_items(f"custom_id {item.custom_id!r} is used by more than one item")
        seen.add(item.custom_id)


def item_body(item: NativeItem, build: Callable[[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """`build`(model, request) for one item; an item llmesh cannot send names its custom_id."""
    try:
        body: dict[str, Any] = build(item.provider_model, item.request)
    except LlmeshError as err:
        err.metadata["custom_id"] = item.custom_id
        raise
    return body
