"""Model prices and the cost of one call's usage.

A `Price` is USD per million tokens. Cost comes from one normalized `Usage` record:

    input * input + cache_read * cache_read + cache_write * cache_write_<ttl>
    + (output - reasoning) * output + reasoning * reasoning

where reasoning tokens (a part of output) are billed at the output price unless the model
has a separate reasoning price. Arithmetic is done in `Decimal` and converted to float
once, so a cost is the float nearest its exact decimal value (0.1 * 3.0 is 0.3, not
0.30000000000000004).

The shipped prices (`PriceTable.defaults`, listed in `llmesh.services.ledger.price_list`) are
OpenAI's and Anthropic's standard list prices as of November 2025 (`SOURCE_DATE`): no
priority, regional or long-context (over 200k input tokens) rates. A call made through a
provider's batch API (``batch=True``) is billed at `Price.batch` times every rate: half, as
both OpenAI's Batch API and Anthropic's Message Batches bill it (prompt-cache prices
included, as their price lists show). Configuration overrides
them; check the providers' pricing pages before relying on a bill. A price also carries the
model's published output limit (`Price.max_output_tokens`), which bounds a call's worst case
when it sets no ``max_tokens``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from functools import lru_cache

from llmesh.services.core.usage import Usage

__all__ = ["BATCH_KINDS", "BATCH_SHARE", "CACHE_TTLS", "SOURCE_DATE", "Cost", "Price", "PriceTable"]

SOURCE_DATE = "2025-11"
"""When the shipped prices were taken from the providers' price lists."""

CACHE_TTLS = ("5m", "1h")
"""The prompt cache lifetimes a cache write can be billed at."""

BATCH_SHARE = Decimal("0.5")
"""The default `Price.batch`: both providers bill batch calls at half the list price."""

BATCH_KINDS = frozenset({"openai", "anthropic"})
"""The provider kinds with a native batch API (OpenAI's Batch API, Anthropic's Message
Batches), whose batch items are billed at `Price.batch`; other kinds have none."""

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)
_SNAPSHOT = re.compile(r"^(?P<base>.+)[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")
"""A dated snapshot (``gpt-4o-2024-08-06``, ``claude-haiku-4-5-20251001``) of a base model."""


@dataclass(frozen=True)
class Price:
    """USD per one million tokens; None means the documented default."""

    input: float
    """Uncached input tokens."""
    output: float
    """Output tokens (including reasoning tokens unless `reasoning` is set)."""
    cache_read: float | None = None
    """Input read from the prompt cache; default 0.1 x input (Anthropic's rate)."""
    cache_write_5m: float | None = None
    """Input written to a 5-minute prompt cache; default 1.25 x input."""
    cache_write_1h: float | None = None
    """Input written to a 1-hour prompt cache; default 2 x input."""
    reasoning: float | None = None
    """Reasoning tokens, when billed apart from output; default the output price."""
    max_output_tokens: int | None = None
    """The most output tokens the model can produce in one reply (its published limit);
    None when unknown. Bounds a call's worst-case cost when the request sets no max_tokens."""
    batch: float | None = None
    """The share of every rate billed for a call made through the provider's batch API;
    default 0.5 (OpenAI's Batch API and Anthropic's Message Batches are half price)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not value >= 0:  # also rejects NaN
                raise ValueError(f"price {f.name} must be >= 0, got {value!r}")
        limit = self.max_output_tokens
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError(f"price max_output_tokens must be an integer, got {limit!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"price max_output_tokens must be >= 1, got {limit!r}")


@dataclass(frozen=True, slots=True)
class _Rates:
    """A price's effective rates in USD per token-million, as exact decimals."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    reasoning: Decimal
    batch: Decimal

    def cache_write(self, ttl: str) -> Decimal:
        if ttl == "5m":
            return self.cache_write_5m
        if ttl == "1h":
            return self.cache_write_1h
        raise ValueError(f"cache_ttl must be one of {CACHE_TTLS}, got {ttl!r}")


def _dec(value: float) -> Decimal:
    return Decimal(str(value))


@lru_cache(maxsize=1024)
def _rates(price: Price) -> _Rates:
    inp = _dec(price.input)
    out = _dec(price.output)

    def pick(value: float | None, default: Decimal) -> Decimal:
        return default if value is None else _dec(value)

    return _Rates(
        input=inp,
        output=out,
        cache_read=pick(price.cache_read, inp * Decimal("0.1")),
        cache_write_5m=pick(price.cache_write_5m, inp * Decimal("1.25")),
        cache_write_1h=pick(price.cache_write_1h, inp * 2),
        reasoning=pick(price.reasoning, out),
        batch=pick(price.batch, BATCH_SHARE),
    )


@dataclass(frozen=True, slots=True)
class Cost:
    """The priced usage of one call."""

    usd: float
    """What the call cost; 0.0 when the model has no price."""
    known: bool
    """False when no price matched the model, so `usd` is not a real cost."""
    cache_savings_usd: float = 0.0
    """What cache reads saved against paying the full input price."""
    price_key: str = ""
    """The table entry that priced the call (``provider/model`` or ``provider/*``)."""


class PriceTable:
    """Prices keyed ``provider/model`` (or ``provider/*`` for a whole provider)."""

    def __init__(self, prices: Mapping[str, Price], *, source_date: str) -> None:
        for key in prices:
            _split_key(key)
        self._prices: dict[str, Price] = dict(prices)
        self.source_date = source_date
        """When the prices were taken from the providers' price lists."""

    @classmethod
    def defaults(cls) -> PriceTable:
        """The shipped list prices of OpenAI's and Anthropic's models; emulator models are free."""
        from llmesh.services.ledger.price_list import DEFAULT_PRICES

        return cls(DEFAULT_PRICES, source_date=SOURCE_DATE)

    @property
    def entries(self) -> Mapping[str, Price]:
        """Every entry, by key."""
        return dict(self._prices)

    def with_overrides(self, raw: Mapping[str, Mapping[str, float]]) -> PriceTable:
        """A copy with entries from configuration, e.g. ``{"openai/gpt-4o": {"input": 2.5}}``.

        An override of an existing key changes only the fields it names; a new key must
        name at least ``input`` and ``output``. Raises ValueError on an unknown field name,
        a negative price or a malformed key.
        """
        prices = dict(self._prices)
        names = {f.name for f in fields(Price)}
        for key, values in raw.items():
            _split_key(key)
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"price {key}: unknown field(s) {sorted(unknown)}")
            try:
                parsed: dict[str, float | int] = {
                    name: _limit(v) if name == "max_output_tokens" else float(v)
                    for name, v in values.items()
                }
            except (TypeError, ValueError) as exc:
                raise ValueError(f"price {key}: prices must be numbers ({exc})") from None
            base = prices.get(key)
            try:
                if base is not None:
                    prices[key] = replace(base, **parsed)  # type: ignore[arg-type]
                elif "input" in parsed and "output" in parsed:
                    prices[key] = Price(**parsed)  # type: ignore[arg-type]
                else:
                    raise ValueError("a new entry needs 'input' and 'output'")
            except ValueError as exc:
                raise ValueError(f"price {key}: {exc}") from None
        return PriceTable(prices, source_date=self.source_date)

    def lookup(self, provider: str, model: str) -> tuple[str, Price] | None:
        """The matching entry's key and price: exact, dated snapshot, then ``provider/*``."""
        key = f"{provider}/{model}"
        price = self._prices.get(key)
        if price is not None:
            return key, price
        m = _SNAPSHOT.match(model)
        if m is not None:
            key = f"{provider}/{m['base']}"
            price = self._prices.get(key)
            if price is not None:
                return key, price
        key = f"{provider}/*"
        price = self._prices.get(key)
        return (key, price) if price is not None else None

    def price(self, provider: str, model: str) -> Price | None:
        """The price of a provider's model, or None when none matches."""
        found = self.lookup(provider, model)
        return found[1] if found is not None else None

    def output_limit(self, provider: str, model: str) -> int | None:
        """The model's published output limit in tokens, or None when unknown."""
        price = self.price(provider, model)
        return None if price is None else price.max_output_tokens

    def cost_of(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        cache_ttl: str = "5m",
        batch: bool = False,
    ) -> Cost:
        """The cost and cache savings of `usage`, and whether the model had a price;
        `batch`: the call went through the provider's batch API (billed at `Price.batch`)."""
        found = self.lookup(provider, model)
        if found is None:
            return Cost(0.0, known=False)
        key, price = found
        r = _rates(price)
        reasoning = min(max(usage.reasoning_tokens, 0), max(usage.output_tokens, 0))
        total = (
            usage.input_tokens * r.input
            + usage.cache_read_tokens * r.cache_read
            + usage.cache_write_tokens * r.cache_write(cache_ttl)
            + (usage.output_tokens - reasoning) * r.output
            + reasoning * r.reasoning
        )
        share = r.batch if batch else Decimal(1)
        return Cost(
            float(total * share / _MILLION),
            known=True,
            cache_savings_usd=_savings(r, usage, share),
            price_key=key,
        )

    def cost(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        cache_ttl: str = "5m",
        batch: bool = False,
    ) -> float:
        """What `usage` cost in USD; 0.0 for a model without a price (see `cost_of`)."""
        return self.cost_of(provider, model, usage, cache_ttl=cache_ttl, batch=batch).usd

    def batch_cost(self, provider: str, model: str, usage: Usage, *, kind: str) -> float:
        """What `usage` cost as an item of a provider-native batch: `Price.batch` of the list
        price for a provider `kind` with a batch API (`BATCH_KINDS`), the list price
        otherwise."""
        return self.cost(provider, model, usage, batch=kind in BATCH_KINDS)

    def worst_case(
        self,
        provider: str,
        model: str,
        input_tokens: int,
        max_output_tokens: int,
        *,
        cache_ttl: str | None = None,
        batch: bool = False,
    ) -> float:
        """An upper bound on a call's cost, for budget reservations.

        Every input token is priced at the dearest input-side rate (a cache write of
        `cache_ttl`, or of either lifetime when None) and every output token at the
        dearer of the output and reasoning prices; a `batch` call at the batch share of
        that. 0.0 for a model without a price.
        """
        price = self.price(provider, model)
        if price is None:
            return 0.0
        r = _rates(price)
        writes = [r.cache_write(cache_ttl)] if cache_ttl else [r.cache_write_5m, r.cache_write_1h]
        input_rate = max(r.input, r.cache_read, *writes)
        output_rate = max(r.output, r.reasoning)
        total = max(input_tokens, 0) * input_rate + max(max_output_tokens, 0) * output_rate
        share = r.batch if batch else Decimal(1)
        return float(total * share / _MILLION)

    def savings(self, provider: str, model: str, usage: Usage) -> float:
        """What cache reads saved against paying the full input price, in USD."""
        price = self.price(provider, model)
        return 0.0 if price is None else _savings(_rates(price), usage)


def _savings(r: _Rates, usage: Usage, share: Decimal = Decimal(1)) -> float:
    saved = usage.cache_read_tokens * (r.input - r.cache_read) * share
    return float(max(saved, _ZERO) / _MILLION)


def _limit(value: object) -> int:
    """A configured ``max_output_tokens``: a whole number (``8192`` or ``8192.0``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"max_output_tokens must be a whole number, got {value!r}")
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"max_output_tokens must be a whole number, got {value!r}")
    return int(number)


def _split_key(key: str) -> tuple[str, str]:
    provider, sep, model = key.partition("/")
    if not sep or not provider or not model:
        raise ValueError(f"price key must be 'provider/model' or 'provider/*', got {key!r}")
    return provider, model
