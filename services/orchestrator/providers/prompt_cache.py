"""Automatic Anthropic prompt-cache breakpoints on long, stable prompt prefixes.

Anthropic caches a prompt prefix only where a block carries ``cache_control`` (a
breakpoint), at most four per request, and only when the prefix up to it reaches the
model's minimum cacheable length. The prefix runs in the order Anthropic reads the prompt:
tools, then the system prompt, then the messages. `place_breakpoints` adds, on a copy of a
Messages request body:

- one on the last tool definition, when the tools alone reach the minimum;
- one on the last non-empty system block, when tools plus system reach it;
- one on the last non-empty block before the final user content (the last block of the
  last user message), when the prompt up to there reaches it: the prefix that the next
  turn of the conversation, or another question about the same document, sends again.

Breakpoints the caller already placed are kept and count toward the four; when fewer slots
remain than candidates, the candidates covering the longest prefixes win (a later
breakpoint caches everything before it too). An automatic breakpoint never breaks the rule
that longer TTLs come first: after a caller's 5m breakpoint it takes 5m, and it is left out
rather than placed as 5m before a caller's 1h breakpoint.

Token counts are estimated (about 3.5 characters a token, rounded up): an overestimate only
costs a breakpoint Anthropic declines to cache, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BREAKPOINTS",
    "estimate_tokens",
    "minimum_cacheable_tokens",
    "place_breakpoints",
]

MAX_BREAKPOINTS = 4
"""Anthropic accepts at most this many ``cache_control`` blocks per request."""

MODES = ("auto", "off")
"""``auto`` places breakpoints; ``off`` leaves the body as the caller built it."""

TTLS = ("5m", "1h")
"""The cache lifetimes Anthropic offers; 5m is its default and needs no ``ttl`` field."""

_CACHEABLE_KINDS = frozenset(
    {"text", "image", "document", "search_result", "tool_use", "tool_result"}
)
"""Content block types that accept ``cache_control`` (thinking blocks do not)."""


def estimate_tokens(text: str) -> int:
    """About 3.5 characters a token, rounded up."""
    return -(-len(text) * 2 // 7)


def minimum_cacheable_tokens(model: str) -> int:
    """The shortest prefix the model caches: 2,048 tokens for Haiku models, else 1,024."""
    return 2048 if "haiku" in model.lower() else 1024


@dataclass(frozen=True, slots=True)
class _Slot:
    """One cacheable position of the prompt: a tool, a system block or a message block."""

    section: str
    """``tools``, ``system`` or ``messages``."""
    index: int
    """The tool, system block or message index."""
    block: int
    """The content block index within a message; -1 elsewhere."""
    item: Mapping[str, Any]
    tokens: int
    """Estimated tokens of the prompt up to and including this slot."""


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _without_marker(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "cache_control"}


def _block_text(block: Mapping[str, Any]) -> str:
    """The text of a block the estimate counts."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "tool_use":
        return f"{block.get('name', '')} {_canonical(block.get('input', {}))}"
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(_block_text(b) for b in content if isinstance(b, Mapping))
        return ""
    return _canonical(_without_marker(block))


IMAGE_TOKENS = 1600
"""Estimated tokens of an image block (Anthropic's images cap at about 1,600 tokens)."""
DOCUMENT_BYTES_PER_TOKEN = 50
"""Estimated bytes of a base64 document's data per token (PDF text plus page images)."""


def _block_tokens(block: Mapping[str, Any], estimate: Callable[[str], int]) -> int:
    """Estimated tokens of one block: images and documents by their kind and size, not by
    the length of their base64 text."""
    kind = block.get("type")
    if kind == "image":
        return IMAGE_TOKENS
    source = block.get("source")
    if kind == "document" and isinstance(source, Mapping) and source.get("type") == "base64":
        data = source.get("data")
        size = len(data) * 3 // 4 if isinstance(data, str) else 0
        return IMAGE_TOKENS + size // DOCUMENT_BYTES_PER_TOKEN
    if kind == "tool_result" and isinstance(block.get("content"), list):
        return sum(_block_tokens(b, estimate) for b in block["content"] if isinstance(b, Mapping))
    return estimate(_block_text(block))


def _blocks(content: object) -> list[tuple[int, Mapping[str, Any]]]:
    """The blocks of a system prompt or message content, with their indices.

    A string is one text block (none when empty); items that are not objects are skipped.
    """
    if isinstance(content, str):
        return [(0, {"type": "text", "text": content})] if content else []
    if isinstance(content, list):
        return [(j, b) for j, b in enumerate(content) if isinstance(b, Mapping)]
    return []


def _eligible(block: Mapping[str, Any]) -> bool:
    """True for a non-empty block of a type that takes ``cache_control``."""
    if block.get("type") not in _CACHEABLE_KINDS:
        return False
    if block.get("type") in ("text", "tool_result"):
        return bool(_block_text(block))
    return True


def _slots(body: Mapping[str, Any], estimate: Callable[[str], int]) -> list[_Slot]:
    """Every position of the prompt, in Anthropic's order, with the running token count."""
    out: list[_Slot] = []
    total = 0
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if isinstance(tool, Mapping):
            total += estimate(_canonical(_without_marker(tool)))
            out.append(_Slot("tools", i, -1, tool, total))
    for i, block in _blocks(body.get("system")):
        total += estimate(_block_text(block))
        out.append(_Slot("system", i, -1, block, total))
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, Mapping):
            continue
        for j, block in _blocks(message.get("content")):
            total += _block_tokens(block, estimate)
            out.append(_Slot("messages", i, j, block, total))
    return out


def _final_user_block(body: Mapping[str, Any], slots: Sequence[_Slot]) -> int | None:
    """The position of the last block of the last user message, if any."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    last_user = None
    for i, message in enumerate(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            last_user = i
    found = None
    for k, slot in enumerate(slots):
        if slot.section == "messages" and slot.index == last_user:
            found = k
    return found


def _last_eligible(slots: Sequence[_Slot], section: str, end: int) -> int | None:
    """The last eligible slot of `section` before position `end`."""
    for k in range(end - 1, -1, -1):
        if slots[k].section == section and _eligible(slots[k].item):
            return k
    return None


def _ttl_of(marker: object) -> str:
    ttl = marker.get("ttl", "5m") if isinstance(marker, Mapping) else "5m"
    return "1h" if ttl == "1h" else "5m"


def _candidates(slots: Sequence[_Slot], body: Mapping[str, Any], minimum: int) -> list[int]:
    """Positions worth a breakpoint, the longest prefix first."""
    found: list[int] = []
    stable_end = _final_user_block(body, slots)
    if stable_end is not None:
        k = _last_eligible(slots, "messages", stable_end)
        if k is not None and slots[k].tokens >= minimum:
            found.append(k)
    k = _last_eligible(slots, "system", len(slots))
    if k is not None and slots[k].tokens >= minimum:
        found.append(k)
    tools = [k for k, s in enumerate(slots) if s.section == "tools"]
    if tools and slots[tools[-1]].tokens >= minimum:
        found.append(tools[-1])
    return [k for k in found if slots[k].item.get("cache_control") is None]


def _fitting_ttl(position: int, ttl: str, existing: Sequence[tuple[int, str]]) -> str | None:
    """`ttl`, shortened or refused so that no 1h breakpoint follows a 5m one."""
    if ttl == "1h" and any(p < position and t == "5m" for p, t in existing):
        ttl = "5m"
    if ttl == "5m" and any(p > position and t == "1h" for p, t in existing):
        return None
    return ttl


def _marker(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _marked(content: object, index: int, marked: dict[str, Any]) -> list[Any]:
    """A copy of `content` (a string or a list of blocks) with block `index` replaced."""
    blocks: list[Any] = list(content) if isinstance(content, list) else [marked]
    blocks[index] = marked
    return blocks


def _apply(body: dict[str, Any], slot: _Slot, marker: dict[str, str]) -> None:
    """Put `marker` on `slot` in `body`, copying each container it changes."""
    marked = {**slot.item, "cache_control": marker}
    if slot.section == "messages":
        messages = list(body["messages"])
        message = messages[slot.index]
        messages[slot.index] = {
            **message,
            "content": _marked(message["content"], slot.block, marked),
        }
        body["messages"] = messages
    else:
        body[slot.section] = _marked(body[slot.section], slot.index, marked)


def place_breakpoints(
    body: Mapping[str, Any],
    *,
    mode: str = "auto",
    ttl: str = "5m",
    min_tokens: int | None = None,
    model: str | None = None,
    estimate: Callable[[str], int] = estimate_tokens,
) -> dict[str, Any]:
    """A copy of the Messages request `body` with automatic cache breakpoints.

    `mode` is ``auto`` or ``off`` (no breakpoints placed, none removed); `ttl` is ``5m`` or
    ``1h`` (an empty string means ``5m``). `min_tokens` defaults to the minimum of `model`,
    itself defaulting to the body's ``model``. The input is never modified: only the
    containers on the way to a new breakpoint are copied. Raises ValueError for an unknown
    mode or ttl.
    """
    mode = mode or "auto"
    ttl = ttl or "5m"
    if mode not in MODES:
        raise ValueError(f"prompt cache mode must be one of {', '.join(MODES)}, not {mode!r}")
    if ttl not in TTLS:
        raise ValueError(f"prompt cache ttl must be one of {', '.join(TTLS)}, not {ttl!r}")
    out = dict(body)
    if mode == "off":
        return out
    if min_tokens is None:
        min_tokens = minimum_cacheable_tokens(model or str(body.get("model") or ""))
    slots = _slots(body, estimate)
    existing = [
        (k, _ttl_of(s.item["cache_control"]))
        for k, s in enumerate(slots)
        if s.item.get("cache_control") is not None
    ]
    free = MAX_BREAKPOINTS - len(existing)
    for position in _candidates(slots, body, min_tokens):
        if free <= 0:
            break
        chosen = _fitting_ttl(position, ttl, existing)
        if chosen is None:
            continue
        _apply(out, slots[position], _marker(chosen))
        existing.append((position, chosen))
        free -= 1
    return out
