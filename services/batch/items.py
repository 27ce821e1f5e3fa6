"""Batch items in and out: the JSONL file format, and the checks every batch passes.

A file holds one `llmesh.v1.BatchItem` per line in proto3 JSON, for example
``{"custom_id": "q1", "chat": {"model": "emulator/echo", "messages": [{"role": "ROLE_USER",
"content": "hi"}]}}`` or ``{"custom_id": "v1", "embed": {"inputs": ["some text"]}}``;
blank lines are skipped. Errors name the line (or the item's index) and the custom_id.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import json_format

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.v1 import batches_pb2

__all__ = ["MAX_CUSTOM_ID", "check_items", "fill_model", "parse_jsonl"]

MAX_CUSTOM_ID = 64
"""The longest custom_id (as OpenAI's and Anthropic's batch APIs allow)."""


def _invalid(field: str, what: str) -> LlmeshError:
    return LlmeshError(
        Reason.INVALID_REQUEST, f"{field} {what}", violations=(FieldViolation(field, what),)
    )


def parse_jsonl(text: str, *, max_items: int) -> list[batches_pb2.BatchItem]:
    """The items of a JSONL file; INVALID_REQUEST naming the first bad line."""
    items: list[batches_pb2.BatchItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(items) >= max_items:
            raise _invalid("file", f"holds more than {max_items} items")
        item = batches_pb2.BatchItem()
        try:
            json_format.Parse(line, item)
        except json_format.ParseError as exc:
            raise _invalid(f"line {number}", f"is not a BatchItem: {exc}") from None
        items.append(item)
    if not items:
        raise _invalid("file", "holds no items")
    check_items(items, prefix="line", numbers=_line_numbers(text))
    return items


def _line_numbers(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def check_items(
    items: Sequence[batches_pb2.BatchItem],
    *,
    prefix: str = "items",
    numbers: Sequence[int] | None = None,
) -> None:
    """Each item names a custom_id (1 to 64 characters, unique in the batch) and a call;
    INVALID_REQUEST naming the first item that does not."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"line {numbers[i]}" if numbers is not None else f"{prefix}[{i}]"
        cid = item.custom_id
        if not cid or len(cid) > MAX_CUSTOM_ID:
            raise _invalid(f"{where}.custom_id", f"must be 1 to {MAX_CUSTOM_ID} characters")
        if cid in seen:
            raise _invalid(f"{where}.custom_id", f"duplicates custom_id {cid!r}")
        seen.add(cid)
        if item.WhichOneof("input") is None:
            raise _invalid(f"{where}", f"(custom_id {cid!r}) must hold a chat or embed call")


def fill_model(item: batches_pb2.BatchItem, model: str) -> None:
    """Give an item that names no model the batch's default `model`."""
    if not model:
        return
    call = item.chat if item.WhichOneof("input") == "chat" else item.embed
    if not call.model.strip():
        call.model = model
