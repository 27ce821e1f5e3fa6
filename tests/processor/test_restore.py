"""The restorer releases what the plain definition releases, piece by piece: held tails,
placeholders split anywhere, keys that are prefixes of others, lone ``<``."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from llmesh.services.common.redaction.restore import PLACEHOLDER
from llmesh.services.processor.redact import Restorer


class PlainRestorer:
    """Holds back the tail from the last ``<`` (within the longest placeholder) while some
    placeholder starts with it and it is not one itself."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.longest = max((len(p) for p in self.values), default=0)
        self.held = ""

    def feed(self, text: str) -> str:
        buf = self.held + text
        start = buf.rfind("<", max(len(buf) - self.longest, 0))
        cut = len(buf)
        if start >= 0:
            tail = buf[start:]
            if tail not in self.values and any(p.startswith(tail) for p in self.values):
                cut = start
        self.held = buf[cut:]
        return self.replace(buf[:cut])

    def flush(self) -> str:
        held, self.held = self.held, ""
        return self.replace(held)

    def replace(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.values.get(m.group(), m.group()), text)


VALUES = {
    "<EMAIL_1>": "jane@example.com",
    "<EMAIL_12>": "joe@example.com",
    "<PHONE_1>": "+49 151 1234 5678",
    "<TICKET_1>": "TCK-000001",
}
PIECES = [*VALUES, "<", "<EMA", "IL_", "1", ">", "<<", "a", " ", "é", "<EMAIL_3>", "\n", "<x>"]


def pieces_of(rng: random.Random, text: str) -> list[str]:
    out = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 6)
        out.append(text[i : i + n])
        i += n
    return out


@pytest.mark.parametrize("seed", range(4))
def test_each_piece_releases_what_the_plain_restorer_releases(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        text = "".join(rng.choices(PIECES, k=rng.randint(1, 12)))
        fast, plain = Restorer(VALUES), PlainRestorer(VALUES)
        for piece in pieces_of(rng, text):
            assert fast.feed(piece) == plain.feed(piece), (text, piece)
        assert fast.flush() == plain.flush()


def test_a_placeholder_that_starts_another_is_released_when_complete() -> None:
    values = {"<A_1>": "x", "<A_1>B": "y"}  # not a placeholder's shape: keys may be anything
    fast, plain = Restorer(values), PlainRestorer(values)
    for piece in ("hi <A", "_1>", "B", " end"):
        assert fast.feed(piece) == plain.feed(piece)
    assert fast.flush() == plain.flush()


def test_no_values_pass_everything_through() -> None:
    restorer = Restorer({})
    assert restorer.feed("a <EMAIL_1") == "a <EMAIL_1"
    assert restorer.flush() == ""
