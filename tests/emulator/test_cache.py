"""Prompt-cache simulation, with a fake clock."""

from __future__ import annotations

from llmesh.services.emulator.cache import PromptCache
from llmesh.services.emulator.replies import Block, BlockKind, Conversation, Turn, prompt_units

LONG = " ".join(["word"] * 1100)  # 1,100 pieces


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def conversation(*texts: str, ttl: str | None = None) -> Conversation:
    system = Turn("system", (Block(BlockKind.TEXT, LONG, cache_ttl=ttl),))
    turns = [system]
    for i, text in enumerate(texts):
        turns.append(Turn("user" if i % 2 == 0 else "assistant", (Block(BlockKind.TEXT, text),)))
    return Conversation("echo", tuple(turns))


def openai(cache: PromptCache, conv: Conversation) -> int:
    units = list(prompt_units(conv))
    return cache.openai(units, sum(u.tokens for u in units))


def test_openai_second_identical_prompt_reads_the_prefix_in_blocks_of_128() -> None:
    cache = PromptCache(clock=Clock())
    assert openai(cache, conversation("hi")) == 0
    # prefix = system message: 3 + 1100 tokens, rounded down to 1024
    assert openai(cache, conversation("hi")) == 1024


def test_openai_continuation_reads_the_previous_prompt() -> None:
    cache = PromptCache(clock=Clock())
    openai(cache, conversation("hi"))
    assert openai(cache, conversation("hi", "hello", "again")) == 1024


def test_openai_short_prompts_are_not_cached() -> None:
    cache = PromptCache(clock=Clock())
    short = Conversation("echo", (Turn("user", (Block(BlockKind.TEXT, "hi"),)),))
    assert openai(cache, short) == openai(cache, short) == 0
    assert len(cache) == 0


def test_openai_entries_expire() -> None:
    clock = Clock()
    cache = PromptCache(clock=clock, ttl_s=300)
    openai(cache, conversation("hi"))
    clock.now += 301
    assert openai(cache, conversation("hi")) == 0


def anthropic(cache: PromptCache, conv: Conversation) -> tuple[int, int, int, int, int]:
    units = list(prompt_units(conv))
    u = cache.anthropic(units, sum(x.tokens for x in units))
    return u.input_tokens, u.cache_read, u.cache_creation, u.creation_5m, u.creation_1h


def test_anthropic_write_then_read() -> None:
    cache = PromptCache(clock=Clock())
    conv = conversation("hi", ttl="5m")  # breakpoint after 3 + 1100 tokens; 7 more follow
    assert anthropic(cache, conv) == (7, 0, 1103, 1103, 0)
    assert anthropic(cache, conv) == (7, 1103, 0, 0, 0)


def test_anthropic_without_marker_or_below_minimum_never_caches() -> None:
    cache = PromptCache(clock=Clock())
    assert anthropic(cache, conversation("hi")) == (1110, 0, 0, 0, 0)
    small = PromptCache(clock=Clock(), min_tokens=2000)
    assert anthropic(small, conversation("hi", ttl="5m")) == (1110, 0, 0, 0, 0)


def test_anthropic_ttls() -> None:
    clock = Clock()
    cache = PromptCache(clock=clock)
    assert anthropic(cache, conversation("hi", ttl="1h"))[3:] == (0, 1103)
    clock.now += 600  # past 5 minutes, within the hour
    assert anthropic(cache, conversation("hi", ttl="1h"))[1] == 1103
    cache.clear()
    anthropic(cache, conversation("hi", ttl="5m"))
    clock.now += 301
    assert anthropic(cache, conversation("hi", ttl="5m"))[1] == 0


def test_cache_is_bounded() -> None:
    cache = PromptCache(clock=Clock(), max_entries=2, min_tokens=1)
    for i in range(5):
        openai(cache, Conversation("echo", (Turn("user", (Block(BlockKind.TEXT, f"m{i}"),)),)))
    assert len(cache) == 2
