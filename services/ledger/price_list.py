"""The shipped list prices, USD per million tokens, as of `pricing.SOURCE_DATE` (2025-11).

OpenAI bills cached input at a per-model discount (0.5x for the gpt-4o and o1/o3-mini
generation, 0.25x for gpt-4.1, o3 and o4-mini, 0.1x for gpt-5) and charges nothing extra
for writing its cache, so its cache-write prices equal the input price. Anthropic bills
cache reads at 0.1x input and cache writes at 1.25x (5 minutes) or 2x (1 hour); Claude 3
Haiku's published rates are rounded, so they are listed as published. Dated snapshots
(``gpt-4o-2024-08-06``) resolve to their base model unless listed here on their own.
"""

from __future__ import annotations

from services.ledger.pricing import Price

__all__ = ["DEFAULT_PRICES"]


def _openai(input: float, cached: float, output: float) -> Price:
    """An OpenAI model: cached input at its own rate, cache writes at the input price."""
    return Price(input, output, cache_read=cached, cache_write_5m=input, cache_write_1h=input)


def _anthropic(input: float, output: float, read: float, write_5m: float, write_1h: float) -> Price:
    """An Anthropic model with its published cache read and write prices."""
    return Price(input, output, cache_read=read, cache_write_5m=write_5m, cache_write_1h=write_1h)


_OPUS_4 = _anthropic(15.0, 75.0, 1.5, 18.75, 30.0)
_SONNET = _anthropic(3.0, 15.0, 0.3, 3.75, 6.0)

DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "openai/gpt-5.1": _openai(1.25, 0.125, 10.0),
    "openai/gpt-5": _openai(1.25, 0.125, 10.0),
    "openai/gpt-5-mini": _openai(0.25, 0.025, 2.0),
    "openai/gpt-5-nano": _openai(0.05, 0.005, 0.4),
    "openai/gpt-4.1": _openai(2.0, 0.5, 8.0),
    "openai/gpt-4.1-mini": _openai(0.4, 0.1, 1.6),
    "openai/gpt-4.1-nano": _openai(0.1, 0.025, 0.4),
    "openai/gpt-4o": _openai(2.5, 1.25, 10.0),
    "openai/gpt-4o-2024-05-13": _openai(5.0, 5.0, 15.0),  # the first gpt-4o: no cache discount
    "openai/gpt-4o-mini": _openai(0.15, 0.075, 0.6),
    "openai/o3": _openai(2.0, 0.5, 8.0),
    "openai/o3-pro": _openai(20.0, 20.0, 80.0),
    "openai/o4-mini": _openai(1.1, 0.275, 4.4),
    "openai/o3-mini": _openai(1.1, 0.55, 4.4),
    "openai/o1": _openai(15.0, 7.5, 60.0),
    "openai/o1-mini": _openai(1.1, 0.55, 4.4),
    "openai/gpt-4-turbo": _openai(10.0, 10.0, 30.0),
    "openai/gpt-3.5-turbo": _openai(0.5, 0.5, 1.5),
    # Anthropic
    "anthropic/claude-opus-4-5": _anthropic(5.0, 25.0, 0.5, 6.25, 10.0),
    "anthropic/claude-opus-4-1": _OPUS_4,
    "anthropic/claude-opus-4": _OPUS_4,
    "anthropic/claude-opus-4-0": _OPUS_4,
    "anthropic/claude-sonnet-4-5": _SONNET,
    "anthropic/claude-sonnet-4": _SONNET,
    "anthropic/claude-sonnet-4-0": _SONNET,
    "anthropic/claude-3-7-sonnet": _SONNET,
    "anthropic/claude-3-5-sonnet": _SONNET,
    "anthropic/claude-haiku-4-5": _anthropic(1.0, 5.0, 0.1, 1.25, 2.0),
    "anthropic/claude-3-5-haiku": _anthropic(0.8, 4.0, 0.08, 1.0, 1.6),
    "anthropic/claude-3-haiku": _anthropic(0.25, 1.25, 0.03, 0.3, 0.5),
    "anthropic/claude-3-opus": _OPUS_4,
    # The built-in emulator is free.
    "emulator/*": Price(0.0, 0.0, cache_read=0.0, cache_write_5m=0.0, cache_write_1h=0.0),
}
"""Every shipped entry, keyed ``provider/model``."""
