"""Deterministic replies and token counts: the emulator's "model", as pure functions.

Both APIs are parsed into one neutral `Conversation`; `plan_reply` decides the answer and
`prompt_units` lays out the prompt for token counting and prompt caching. The rules (also
in ``services/emulator/README.md``):

Token pieces
    A piece is a run of non-whitespace characters together with the whitespace before it;
    whitespace at the very end of a text is one more piece (regex ``\\s*\\S+|\\s+``). So
    ``"Hello big world"`` is ``["Hello", " big", " world"]``, pieces always join back into
    the text, and a text's token count is its number of pieces.

Reply
    1. Tools are called when the request offers tools, ``tool_choice`` is not ``none`` and
       either the last message is a user message naming a tool (as a whole word, case
       sensitive), or ``tool_choice`` forces a tool (that tool) or requires one (the named
       ones, else the first). One call per chosen tool, in the order of the tools list (only
       the first when parallel calls are disabled); arguments: a small instance valid
       against the tool's parameters schema (`instances.instance`, strings echoing the last
       user text; ``{}`` for a tool without parameters) as compact JSON. Finish:
       ``tool_calls`` / ``tool_use``.
    2. Otherwise, when the last message carries tool results (OpenAI ``tool`` messages,
       Anthropic ``tool_result`` blocks), the reply is ``"Tool result: "`` followed by the
       contents of the trailing tool results joined with newlines.
    3. Otherwise, with an OpenAI ``response_format`` of ``json_schema``, the reply is a small
       instance valid against the schema (as for tool arguments) as compact JSON; with
       ``json_object``, ``{"text": <last user text>}``.
    4. Otherwise the reply echoes the text of the last user message (text parts joined with
       newlines), whatever the model name.
    5. When the conversation ends with an assistant message (a prefill, which Anthropic's
       API continues), a text reply that starts with the prefill's text continues it: only
       the rest is sent.
    A text reply is cut before the earliest stop sequence it contains, if the text before
    it fits in ``max_tokens`` pieces (finish ``stop`` / ``stop_sequence``); else, when it has
    more than ``max_tokens`` pieces, it is cut to ``max_tokens`` pieces (finish ``length`` /
    ``max_tokens``). Tool calls are never cut.

Output tokens
    The pieces of the text; for a tool call the pieces of its name plus those of its
    arguments.

Input tokens
    Tool definitions (their canonical JSON, sorted keys), then the system prompt and every
    message: ``MESSAGE_OVERHEAD`` (3) per message plus the pieces of each block (text; a tool
    call's name and arguments; a tool result's content; any other block's JSON), plus
    ``REPLY_OVERHEAD`` (3) once for the reply's priming.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from llmesh.services.emulator.instances import instance

PIECE = re.compile(r"\s*\S+|\s+")
"""One token piece: a word with the whitespace before it, or trailing whitespace."""

MESSAGE_OVERHEAD = 3
"""Input tokens added per message (the system prompt counts as one message)."""

REPLY_OVERHEAD = 3
"""Input tokens added once per request, for the priming of the reply."""

_FRAGMENT = re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\.|[^\\]){1,8}", re.DOTALL)


def pieces(text: str) -> list[str]:
    """Split `text` into token pieces; ``"".join(pieces(t)) == t`` always holds."""
    return PIECE.findall(text)


def count_tokens(text: str) -> int:
    """The number of token pieces in `text`."""
    return len(PIECE.findall(text)) if text else 0


def fragments(json_text: str) -> list[str]:
    """Split JSON text into fragments of up to 8 characters, never inside an escape sequence."""
    return _FRAGMENT.findall(json_text)


class BlockKind(enum.StrEnum):
    """What a content block holds."""

    TEXT = "text"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    MEDIA = "media"
    """An image, document or audio clip; its text names it (see `media`)."""
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Block:
    """One content block of a message, reduced to the text that is counted and echoed."""

    kind: BlockKind
    text: str
    cache_ttl: str | None = None
    """The ``ttl`` of an Anthropic ``cache_control`` marker on this block, if any."""
    tokens: int | None = None
    """The block's input tokens when not counted from its text (media blocks)."""


_SHOWN = (BlockKind.TEXT, BlockKind.MEDIA)


@dataclass(frozen=True, slots=True)
class Turn:
    """One message: ``system``, ``user``, ``assistant`` or ``tool``."""

    role: str
    blocks: tuple[Block, ...]

    @property
    def text(self) -> str:
        """The message's text and media blocks, joined with newlines."""
        return "\n".join(b.text for b in self.blocks if b.kind in _SHOWN)

    @property
    def tool_results(self) -> list[str]:
        """The contents of the message's tool results."""
        return [b.text for b in self.blocks if b.kind is BlockKind.TOOL_RESULT]


@dataclass(frozen=True, slots=True)
class ToolDef:
    """A tool offered to the model."""

    name: str
    json: str
    """The definition as canonical JSON (sorted keys), which is what gets counted."""
    cache_ttl: str | None = None
    parameters: str = ""
    """The JSON Schema of the arguments, as JSON text (empty: no parameters)."""


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether and which tools the model may call."""

    mode: str = "auto"
    """``auto``, ``none``, ``required`` (OpenAI ``required`` / Anthropic ``any``) or ``tool``."""
    name: str | None = None
    """The forced tool when `mode` is ``tool``."""
    parallel: bool = True
    """False when the request disables parallel tool calls."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat request of either API, in neutral form."""

    model: str
    turns: tuple[Turn, ...]
    tools: tuple[ToolDef, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    response_format: str = "text"
    """OpenAI's ``response_format`` type: ``text``, ``json_object`` or ``json_schema``."""
    response_schema: str = ""
    """The ``json_schema`` schema, as JSON text."""


class Finish(enum.StrEnum):
    """Why a reply ended, before each API names it."""

    END = "end"
    LENGTH = "length"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_CALLS = "tool_calls"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call of a reply."""

    index: int
    name: str
    arguments: str
    """The arguments as compact JSON text."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the emulated model answers."""

    pieces: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    finish: Finish
    stop_sequence: str | None
    output_tokens: int

    @property
    def text(self) -> str:
        """The reply's text (empty for a tool-call reply)."""
        return "".join(self.pieces)


def last_user_text(turns: Sequence[Turn]) -> str:
    """The text of the last user message that has text; empty when there is none."""
    for turn in reversed(turns):
        if turn.role == "user" and any(b.kind in _SHOWN for b in turn.blocks):
            return turn.text
    return ""


def trailing_tool_results(turns: Sequence[Turn]) -> list[str]:
    """The contents of the tool results at the end of the conversation, in order."""
    out: list[str] = []
    for turn in reversed(turns):
        results = turn.tool_results
        if not results:
            break
        out[:0] = results
    return out


def mentions(text: str, name: str) -> bool:
    """True when `name` appears in `text` as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def plan_reply(conv: Conversation) -> Reply:
    """Decide the reply to `conv` by the rules in this module's docstring."""
    calls = _tool_calls(conv)
    if calls:
        tokens = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        return Reply((), calls, Finish.TOOL_CALLS, None, tokens)
    results = trailing_tool_results(conv.turns)
    if results:
        text = "Tool result: " + "\n".join(results)
    elif conv.response_format == "json_schema":
        schema = orjson.loads(conv.response_schema or "{}")
        text = orjson.dumps(instance(schema, last_user_text(conv.turns))).decode()
        return cut_text(text, conv.max_tokens, conv.stop)
    elif conv.response_format == "json_object":
        text = orjson.dumps({"text": last_user_text(conv.turns)}).decode()
        return cut_text(text, conv.max_tokens, conv.stop)
    else:
        text = last_user_text(conv.turns)
    last = conv.turns[-1] if conv.turns else None
    prefill = last.text if last is not None and last.role == "assistant" else ""
    if prefill and text.startswith(prefill):
        text = text[len(prefill) :]
    return cut_text(text, conv.max_tokens, conv.stop)


def cut_text(text: str, max_tokens: int | None, stop: Sequence[str]) -> Reply:
    """Apply stop sequences and ``max_tokens`` to a text reply."""
    hit: tuple[int, str] | None = None
    for seq in stop:
        at = text.find(seq) if seq else -1
        if at >= 0 and (hit is None or at < hit[0]):
            hit = (at, seq)
    if hit is not None:
        before = pieces(text[: hit[0]])
        if max_tokens is None or len(before) <= max_tokens:
            return Reply(tuple(before), (), Finish.STOP_SEQUENCE, hit[1], len(before))
    parts = pieces(text)
    if max_tokens is not None and len(parts) > max_tokens:
        return Reply(tuple(parts[:max_tokens]), (), Finish.LENGTH, None, max_tokens)
    return Reply(tuple(parts), (), Finish.END, None, len(parts))


def _tool_calls(conv: Conversation) -> tuple[ToolCall, ...]:
    choice = conv.tool_choice
    if not conv.tools or choice.mode == "none":
        return ()
    user_text = last_user_text(conv.turns)
    if choice.mode == "tool":
        chosen = [t for t in conv.tools if t.name == choice.name][:1]
    else:
        last = conv.turns[-1] if conv.turns else None
        asked = last is not None and last.role == "user" and not last.tool_results
        chosen = [t for t in conv.tools if asked and mentions(user_text, t.name)]
        if choice.mode == "required" and not chosen:
            chosen = [conv.tools[0]]
    if not choice.parallel:
        chosen = chosen[:1]
    return tuple(
        ToolCall(i, t.name, orjson.dumps(instance(_schema(t), user_text)).decode())
        for i, t in enumerate(chosen)
    )


def _schema(tool: ToolDef) -> object:
    return orjson.loads(tool.parameters) if tool.parameters else {}


def tool_call_id(prefix: str, conv: Conversation, index: int) -> str:
    """A deterministic tool-call id: `prefix` plus a hash of the conversation and `index`."""
    h = hashlib.blake2b(digest_size=12)
    h.update(conv.model.encode())
    for tool in conv.tools:
        h.update(b"\x00t")
        h.update(tool.name.encode())
    for turn in conv.turns:
        h.update(b"\x00r" + turn.role.encode())
        for block in turn.blocks:
            h.update(b"\x00b" + block.kind.encode() + b"\x00")
            h.update(block.text.encode())
    h.update(b"\x00i%d" % index)
    return prefix + h.hexdigest()


@dataclass(frozen=True, slots=True)
class Unit:
    """One counted stretch of the prompt, in prompt order."""

    kind: str
    text: str
    tokens: int
    boundary: bool = False
    """True for the zero-token marker that ends a message (where OpenAI's cache may cut)."""
    cache_ttl: str | None = None
    """The Anthropic ``cache_control`` ttl when the prompt is marked here."""


def prompt_units(conv: Conversation) -> Iterator[Unit]:
    """The prompt as counted units: tools, then each message, then the reply priming."""
    for tool in conv.tools:
        yield Unit("tool", tool.json, count_tokens(tool.json), cache_ttl=tool.cache_ttl)
    for turn in conv.turns:
        yield Unit("role", turn.role, MESSAGE_OVERHEAD)
        for block in turn.blocks:
            tokens = count_tokens(block.text) if block.tokens is None else block.tokens
            yield Unit(block.kind, block.text, tokens, cache_ttl=block.cache_ttl)
        yield Unit("end", "", 0, boundary=True)
    yield Unit("reply", "", REPLY_OVERHEAD)


def input_tokens(conv: Conversation) -> int:
    """The prompt's token count (see the module docstring)."""
    return sum(u.tokens for u in prompt_units(conv))
