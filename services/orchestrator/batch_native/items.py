"""Checks and body building shared by the provider batch clients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llmesh.services.batch.native_seam import NativeItem
from llmesh.services.common.errors import LlmeshError, Reason

__all__ = ["check_items", "invalid_items", "item_body", "native_error"]


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


def native_error(
    exc: BaseException,
    classify: Callable[..., LlmeshError],
    not_found: type[BaseException],
    provider: str,
    api_key: str,
    batch_id: str | None = None,
) -> LlmeshError:
    """`exc` from a provider's SDK as an `LlmeshError`: BATCH_NOT_FOUND for the SDK's
    `not_found` on the provider's batch `batch_id`, else as `classify` (the SDK adapter's
    classifier) reads it; the API key is never echoed in the message."""
    if isinstance(exc, LlmeshError):
        return exc
    if batch_id is not None and isinstance(exc, not_found):
        return LlmeshError(Reason.BATCH_NOT_FOUND, f"provider {provider} has no batch {batch_id}")
    err = classify(exc, started=False)
    if len(api_key) >= 8 and api_key in err.message:  # never echo a credential
        err.message = err.message.replace(api_key, "[redacted]")
    return err
