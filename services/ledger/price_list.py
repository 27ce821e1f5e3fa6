"""The shipped list prices, USD per million tokens, as of `pricing.SOURCE_DATE` (2025-11).

OpenAI bills cached input at a per-model discount (0.5x for the gpt-4o and o1/o3-mini
generation, 0.25x for gpt-4.1, o3 and o4-mini, 0.1x for gpt-5) and charges nothing extra
for writing its cache, so its cache-write prices equal the input price. Anthropic bills
cache reads at 0.1x input and cache writes at 1.25x (5 minutes) or 2x (1 hour); Claude 3
Haiku's published rates are rounded, so they are listed as published. Dated snapshots
(``gpt-4o-2024-08-06``) resolve to their base model unless listed here on their own.

Embedding models bill input tokens only (``text-embedding-3-small`` $0.02, ``-large``
$0.13, ``ada-002`` $0.10 per million).

Each model also carries its published output limit (`Price.max_output_tokens`, the most
tokens one reply can have), which bounds a call's worst-case cost when it sets no
``max_tokens``: Claude 3.7 Sonnet's is its standard 64,000 (128,000 only behind a beta
header), o-series limits include reasoning tokens.
"""

from __future__ import annotations

from llmesh.services.ledger.pricing import Price

__all__ = ["DEFAULT_PRICES"]


def _openai(input: float, cached: float, output: float, limit: int) -> Price:
    """An OpenAI model: cached input at its own rate, cache writes at the input price."""
    return Price(
        input,
        output,
        cache_read=cached,
        cache_write_5m=input,
        cache_write_1h=input,
        max_output_tokens=limit,
    )


def _embedding(input: float) -> Price:
    """An OpenAI embedding model: input tokens only, no prompt cache, no output."""
    return Price(input, 0.0, cache_read=input, cache_write_5m=input, cache_write_1h=input)


def _anthropic(
    input: float, output: float, read: float, write_5m: float, write_1h: float, limit: int
) -> Price:
    """An Anthropic model with its published cache read and write prices."""
    return Price(
        input,
        output,
        cache_read=read,
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        max_output_tokens=limit,
    )


_OPUS_4 = _anthropic(15.0, 75.0, 1.5, 18.75, 30.0, 32_000)
_SONNET_4 = _anthropic(3.0, 15.0, 0.3, 3.75, 6.0, 64_000)

DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "openai/gpt-5.1": _openai(1.25, 0.125, 10.0, 128_000),
    "openai/gpt-5": _openai(1.25, 0.125, 10.0, 128_000),
    "openai/gpt-5-mini": _openai(0.25, 0.025, 2.0, 128_000),
    "openai/gpt-5-nano": _openai(0.05, 0.005, 0.4, 128_000),
    "openai/gpt-4.1": _openai(2.0, 0.5, 8.0, 32_768),
    "openai/gpt-4.1-mini": _openai(0.4, 0.1, 1.6, 32_768),
    "openai/gpt-4.1-nano": _openai(0.1, 0.025, 0.4, 32_768),
    "openai/gpt-4o": _openai(2.5, 1.25, 10.0, 16_384),
    "openai/gpt-4o-2024-05-13": _openai(5.0, 5.0, 15.0, 4_096),  # no cache discount
    "openai/gpt-4o-mini": _openai(0.15, 0.075, 0.6, 16_384),
    "openai/o3": _openai(2.0, 0.5, 8.0, 100_000),
    "openai/o3-pro": _openai(20.0, 20.0, 80.0, 100_000),
    "openai/o4-mini": _openai(1.1, 0.275, 4.4, 100_000),
    "openai/o3-mini": _openai(1.1, 0.55, 4.4, 100_000),
    "openai/o1": _openai(15.0, 7.5, 60.0, 100_000),
    "openai/o1-mini": _openai(1.1, 0.55, 4.4, 65_536),
    "openai/gpt-4-turbo": _openai(10.0, 10.0, 30.0, 4_096),
    "openai/gpt-3.5-turbo": _openai(0.5, 0.5, 1.5, 4_096),
    "openai/text-embedding-3-small": _embedding(0.02),
    "openai/text-embedding-3-large": _embedding(0.13),
    "openai/text-embedding-ada-002": _embedding(0.10),
    # Anthropic
    "anthropic/claude-opus-4-5": _anthropic(5.0, 25.0, 0.5, 6.25, 10.0, 64_000),
    "anthropic/claude-opus-4-1": _OPUS_4,
    "anthropic/claude-opus-4": _OPUS_4,
    "anthropic/claude-opus-4-0": _OPUS_4,
    "anthropic/claude-sonnet-4-5": _SONNET_4,
    "anthropic/claude-sonnet-4": _SONNET_4,
    "anthropic/claude-sonnet-4-0": _SONNET_4,
    "anthropic/claude-3-7-sonnet": _SONNET_4,
    "anthropic/claude-3-5-sonnet": _anthropic(3.0, 15.0, 0.3, 3.75, 6.0, 8_192),
    "anthropic/claude-haiku-4-5": _anthropic(1.0, 5.0, 0.1, 1.25, 2.0, 64_000),
    "anthropic/claude-3-5-haiku": _anthropic(0.8, 4.0, 0.08, 1.0, 1.6, 8_192),
    "anthropic/claude-3-haiku": _anthropic(0.25, 1.25, 0.03, 0.3, 0.5, 4_096),
    "anthropic/claude-3-opus": _anthropic(15.0, 75.0, 1.5, 18.75, 30.0, 4_096),
    # The built-in emulator is free.
    "emulator/*": Price(0.0, 0.0, cache_read=0.0, cache_write_5m=0.0, cache_write_1h=0.0),
    # Models run in-process by the local provider kind cost nothing per token.
    "local/*": Price(0.0, 0.0, cache_read=0.0, cache_write_5m=0.0, cache_write_1h=0.0),
}
"""Every shipped entry, keyed ``provider/model``."""
