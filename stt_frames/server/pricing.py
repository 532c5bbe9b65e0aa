"""Usage and cost of one transcription, as the local server reports them.

Definitions (the contract leaves them to the provider; these are the local server's):

- ``seconds``: duration of the decoded audio (for ``fake/echo`` on WAV, read from the header).
- ``input_tokens``: audio tokens, ``ceil(seconds * AUDIO_TOKENS_PER_SECOND)`` (10 per second).
- ``output_tokens``: ``ceil(len(text) / 4)``, the usual "four characters a token" rule.
- ``total_tokens``: ``input_tokens + output_tokens``.
- ``cost``: ``price_per_minute * seconds / 60`` in USD, rounded to 10 decimals. Every model is free
  unless a price is set, e.g. ``create_app(prices={"fake/echo": 0.006})`` or ``--price fake/echo=0.006``.

Example::

    from stt_frames.server.pricing import compute_usage
    compute_usage(seconds=30.0, text="hello world", price_per_minute=0.006)
    # {'cost': 0.003, 'input_tokens': 300, 'output_tokens': 3, 'seconds': 30.0, 'total_tokens': 303}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "CHARS_PER_OUTPUT_TOKEN",
    "compute_usage",
    "parse_price",
    "resolve_prices",
]

#: Audio tokens billed per second of input audio.
AUDIO_TOKENS_PER_SECOND: int = 10

#: Characters of transcript counted as one output token.
CHARS_PER_OUTPUT_TOKEN: int = 4


def compute_usage(*, seconds: float, text: str, price_per_minute: float) -> dict[str, Any]:
    """The contract's ``usage`` object for ``seconds`` of audio transcribed to ``text``.

    Example::

        compute_usage(seconds=1.5, text="hi", price_per_minute=0.0)["input_tokens"]  # 15
    """
    input_tokens = math.ceil(round(seconds * AUDIO_TOKENS_PER_SECOND, 6))
    output_tokens = math.ceil(len(text) / CHARS_PER_OUTPUT_TOKEN)
    return {
        "cost": round(price_per_minute * seconds / 60.0, 10),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "seconds": round(seconds, 6),
        "total_tokens": input_tokens + output_tokens,
    }


def resolve_prices(models: Iterable[str], prices: Mapping[str, float] | None) -> dict[str, float]:
    """A full price table (USD per audio minute) for ``models``: 0 unless ``prices`` says otherwise.

    Raises ValueError for a price of an unknown model, or one that is negative or not finite.

    Example::

        resolve_prices(["fake/echo"], {"fake/echo": 0.006})  # {'fake/echo': 0.006}
    """
    table = dict.fromkeys(models, 0.0)
    for model, price in (prices or {}).items():
        if model not in table:
            raise ValueError(f"price given for unknown model {model!r}; models: {', '.join(sorted(table))}")
        if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
            raise ValueError(f"price for {model!r} must be a finite number of USD per minute, got {price!r}")
        if price < 0:
            raise ValueError(f"price for {model!r} must not be negative, got {price!r}")
        table[model] = float(price)
    return table


def parse_price(text: str) -> tuple[str, float]:
    """Parse ``MODEL=USD_PER_MINUTE`` (the ``--price`` option) into a pair.

    Example::

        parse_price("fake/echo=0.006")  # ('fake/echo', 0.006)
    """
    model, sep, value = text.partition("=")
    model = model.strip()
    if not sep or not model:
        raise ValueError(f"expected MODEL=USD_PER_MINUTE, got {text!r}")
    try:
        price = float(value)
    except ValueError:
        raise ValueError(f"price in {text!r} is not a number") from None
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"price in {text!r} must be a finite number >= 0")
    return model, price
