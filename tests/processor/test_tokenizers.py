"""Token counting: exact vectors, model families, estimates, chat framing, pacing, loading."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading

import pytest

from llmesh.services.core.chat import Message, Role, ToolCall
from llmesh.services.processor.tokenizers import (
    CL100K_BASE,
    ESTIMATE,
    O200K_BASE,
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    Encoder,
    Tokenizers,
    encoding_for_model,
    load_encoding,
    split_at_safe_cuts,
)

# Token ids from OpenAI's tiktoken for the same encodings (encode_ordinary).
VECTORS: dict[str, dict[str, list[int]]] = {
    CL100K_BASE: {
        "Hello, world!": [9906, 11, 1917, 0],
        "hello world": [15339, 1917],
        "tiktoken is great!": [83, 1609, 5963, 374, 2294, 0],
        "お誕生日おめでとう": [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699],
        "  two spaces\n\n\tand a tab ": [220, 1403, 12908, 271, 53577, 264, 5769, 220],
        "<|endoftext|>": [27, 91, 8862, 728, 428, 91, 29],
        "I'm 100% sure it's 3.14159!": [
            40,
            2846,
            220,
            1041,
            4,
            2771,
            433,
            596,
            220,
            18,
            13,
            9335,
            2946,
            0,
        ],
        "naïve café 🙂": [3458, 38672, 588, 53050, 28584],
    },
    O200K_BASE: {
        "Hello, world!": [13225, 11, 2375, 0],
        "hello world": [24912, 2375],
        "tiktoken is great!": [83, 8251, 2488, 382, 2212, 0],
        "お誕生日おめでとう": [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669],
        "  two spaces\n\n\tand a tab ": [220, 1920, 18608, 279, 128995, 261, 6842, 220],
        "<|endoftext|>": [27, 91, 419, 1440, 919, 91, 29],
        "I'm 100% sure it's 3.14159!": [
            15390,
            220,
            1353,
            4,
            3239,
            4275,
            220,
            18,
            13,
            16926,
            4621,
            0,
        ],
        "naïve café 🙂": [1503, 9954, 737, 30469, 26192],
    },
}

# The conversation of OpenAI's "How to count tokens with tiktoken" cookbook, whose prompt
# the API counted as 129 tokens on gpt-3.5-turbo and gpt-4, and 124 on gpt-4o(-mini).
COOKBOOK = (
    Message(
        Role.SYSTEM,
        "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    ),
    Message(Role.SYSTEM, "New synergies will help drive top-line growth.", name="example_user"),
    Message(
        Role.SYSTEM,
        "Things working well together will increase revenue.",
        name="example_assistant",
    ),
    Message(
        Role.SYSTEM,
        "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
        name="example_user",
    ),
    Message(
        Role.SYSTEM,
        "Let's talk later when we're less busy about how to do better.",
        name="example_assistant",
    ),
    Message(
        Role.USER,
        "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    ),
)


@pytest.mark.parametrize("encoding", [CL100K_BASE, O200K_BASE])
def test_token_ids_match_tiktoken(encoding: str, tokenizers: Tokenizers) -> None:
    encoder = load_encoding(encoding)
    counter = tokenizers.for_encoding(encoding)
    for text, ids in VECTORS[encoding].items():
        assert encoder.encode(text) == ids, text  # type: ignore[attr-defined]
        assert counter.count(text) == len(ids), text


@pytest.mark.parametrize(
    ("model", "tokens"),
    [
        ("openai/gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("openai/gpt-4o", 124),
        ("openai/gpt-4o-mini", 124),
    ],
)
def test_chat_framing_matches_the_openai_cookbook(
    model: str, tokens: int, tokenizers: Tokenizers
) -> None:
    assert tokenizers.for_model(model).conversation_tokens(COOKBOOK) == tokens


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4o-mini", O200K_BASE),
        ("gpt-4o", O200K_BASE),
        ("openai/gpt-4o-2024-08-06", O200K_BASE),
        ("chatgpt-4o-latest", O200K_BASE),
        ("openai/gpt-4.1-nano", O200K_BASE),
        ("gpt-4.5-preview", O200K_BASE),
        ("gpt-5", O200K_BASE),
        ("openai/gpt-5.1-codex", O200K_BASE),
        ("o1", O200K_BASE),
        ("o1-mini", O200K_BASE),
        ("o3-pro", O200K_BASE),
        ("o4-mini", O200K_BASE),
        ("OpenAI/GPT-4O", O200K_BASE),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", O200K_BASE),
        ("emulator/gpt-4o-mini", O200K_BASE),
        ("azure/gpt-4o", O200K_BASE),
        ("gpt-4", CL100K_BASE),
        ("openai/gpt-4-turbo", CL100K_BASE),
        ("gpt-4-0613", CL100K_BASE),
        ("gpt-4-32k", CL100K_BASE),
        ("gpt-3.5-turbo", CL100K_BASE),
        ("gpt-3.5-turbo-0125", CL100K_BASE),
        ("gpt-35-turbo", CL100K_BASE),
        ("text-embedding-3-small", CL100K_BASE),
        ("openai/text-embedding-ada-002", CL100K_BASE),
        ("anthropic/claude-3-5-haiku-latest", None),
        ("claude-sonnet-4-5", None),
        ("emulator/echo", None),
        ("ollama/llama3.1:8b", None),
        ("meta-llama/Llama-3.1-8B-Instruct", None),
        ("gpt-4.2", None),
        ("o10", None),
        ("gpt-oss-20b", None),
        ("", None),
    ],
)
def test_model_family(model: str, encoding: str | None) -> None:
    assert encoding_for_model(model) == encoding


def test_unknown_models_are_estimated_and_labelled(tokenizers: Tokenizers) -> None:
    for model in ("anthropic/claude-3-5-haiku-latest", "emulator/echo", "local/whatever"):
        counter = tokenizers.for_model(model)
        assert (counter.name, counter.exact) == (ESTIMATE, False)
    exact = tokenizers.for_model("openai/gpt-4o")
    assert (exact.name, exact.exact) == (O200K_BASE, True)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("日本", 2), ("🙂", 1), ("x" * 401, 101)],
)
def test_estimate_is_utf8_bytes_over_four_rounded_up(
    text: str, tokens: int, tokenizers: Tokenizers
) -> None:
    assert tokenizers.for_model("anthropic/claude-sonnet-4-5").count(text) == tokens


def test_estimated_messages_use_the_same_framing(tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_model("anthropic/claude-sonnet-4-5")
    # 3 framing + "user" (1) + 8 bytes of content (2) + name "ann" (1) + 1 for the name
    message = Message(Role.USER, "12345678", name="ann")
    assert counter.message_tokens(message) == 3 + 1 + 2 + 1 + 1
    assert counter.conversation_tokens([message]) == 8 + REPLY_PRIMING


def test_tool_calls_and_results_are_counted(tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_model("openai/gpt-4o")
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    assistant = Message(Role.ASSISTANT, tool_calls=(call,))
    expected = (
        TOKENS_PER_MESSAGE
        + counter.count("assistant")
        + counter.count(call.name)
        + counter.count(call.arguments)
    )
    assert counter.message_tokens(assistant) == expected
    result = Message(Role.TOOL, "18C and sunny", tool_call_id="call_1")
    assert counter.message_tokens(result) == (
        TOKENS_PER_MESSAGE
        + counter.count("tool")
        + counter.count(result.content)
        + counter.count("call_1")
    )


def test_a_name_costs_one_token_plus_its_text(tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_model("gpt-4")
    plain = Message(Role.USER, "hi")
    named = Message(Role.USER, "hi", name="bob")
    assert counter.message_tokens(named) == counter.message_tokens(plain) + 1 + 1


def test_texts_beyond_the_wrapper_limits_are_counted(tokenizers: Tokenizers) -> None:
    text = " ".join(["hello"] * 300_000)  # 300,000 tokens and 1.8 million characters
    for encoding in (CL100K_BASE, O200K_BASE):
        assert tokenizers.for_encoding(encoding).count(text) == 300_000


def test_lone_surrogates_are_counted_not_raised(tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_encoding(CL100K_BASE)
    assert counter.count("a\ud800b") == counter.count("a\ufffdb")


def _mixed_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pieces = list("ab XY\n\n\r\t  '\u2019.,:/-_()0123456789éü日本🙂\u0301\u00a0")
    pieces += ["'s", "'ll", "\n/", " /", "A ", " b", "\nx", "x\n", "hello ", "World\n"]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 120))) for _ in range(count)]


@pytest.mark.parametrize("encoding", [CL100K_BASE, O200K_BASE])
def test_counts_add_up_across_safe_cuts(encoding: str, tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_encoding(encoding)
    cuts = 0
    for text in _mixed_texts(seed=1, count=3000):
        parts = list(split_at_safe_cuts(text, 1))
        assert "".join(parts) == text
        cuts += len(parts) - 1
        assert sum(counter.count(p) for p in parts) == counter.count(text), text
    assert cuts > 5_000


def test_split_keeps_a_text_without_cut_points_whole() -> None:
    assert list(split_at_safe_cuts("x" * 100, 10)) == ["x" * 100]
    assert list(split_at_safe_cuts("short", 10)) == ["short"]
    parts = list(split_at_safe_cuts("aa bb cc dd", 2))
    assert parts == ["aa", " bb", " cc", " dd"]


async def test_large_texts_are_counted_exactly_while_the_loop_keeps_running() -> None:
    paced = Tokenizers(chunk_chars=1000)
    counter = paced.for_encoding(O200K_BASE)
    text = "\n".join(_mixed_texts(seed=2, count=3000))
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        total = await counter.count_text(text)
    finally:
        done.set()
        await ticker
    assert total == counter.count(text)
    assert ticks > 20

    messages = [Message(Role.USER, t) for t in _mixed_texts(seed=3, count=200)]
    sizes = await counter.message_sizes(messages)
    assert sizes == [counter.message_tokens(m) for m in messages]


class Recording:
    """A loader that records which encodings were loaded."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Encoder:
        with self._lock:
            self.loaded.append(name)
        return _Words()


class _Words:
    def count(self, text: str) -> int:
        return len(text.split())


def test_encodings_load_lazily_once_and_warm_loads_both() -> None:
    loader = Recording()
    tokenizers = Tokenizers(loader)
    assert loader.loaded == []
    tokenizers.for_model("anthropic/claude-sonnet-4-5")
    assert loader.loaded == []
    first = tokenizers.for_model("openai/gpt-4o")
    assert tokenizers.for_model("gpt-5") is first
    assert loader.loaded == [O200K_BASE]
    tokenizers.warm()
    assert sorted(loader.loaded) == [CL100K_BASE, O200K_BASE]


def test_concurrent_first_use_loads_once() -> None:
    loader = Recording()
    tokenizers = Tokenizers(loader)
    threads = [threading.Thread(target=tokenizers.for_model, args=("gpt-4",)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loader.loaded == [CL100K_BASE]


def test_importing_the_package_loads_no_tokenizer() -> None:
    code = "import sys, llmesh.services.processor; print('bpe_openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
