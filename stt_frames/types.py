"""The answer of one transcription: ``Transcription(text, usage)`` with ``Usage`` as the contract defines it.

Example::

    t = client.transcribe("clip.wav", model="openai/whisper-1")
    t.text, t.usage.cost, t.usage.seconds
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .errors import MalformedResponseError

__all__ = ["Transcription", "Usage"]


def _number(value: Any, name: str, *, integer: bool) -> Any:
    """A usage field as int/float, None when absent; a wrong type is a malformed answer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponseError(f"usage.{name} should be a number, got {type(value).__name__}: {value!r:.40}")
    if isinstance(value, float) and not math.isfinite(value):
        raise MalformedResponseError(f"usage.{name} is not a finite number: {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise MalformedResponseError(f"usage.{name} should be a whole number, got {value!r}")
        return int(value)
    return float(value)


@dataclass(frozen=True, slots=True)
class Usage:
    """Usage statistics of one request. Each field is None when the server left it out.

    ``cost`` is USD, ``seconds`` the audio duration the provider billed (duration-priced models),
    and the token fields are set by token-priced models.
    """

    cost: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    seconds: float | None = None
    total_tokens: int | None = None

    @classmethod
    def from_json(cls, data: Any) -> Usage:
        """Parse the contract's ``usage`` object (None or missing gives an all-None Usage)."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise MalformedResponseError(f"usage should be an object, got {type(data).__name__}")
        return cls(
            cost=_number(data.get("cost"), "cost", integer=False),
            input_tokens=_number(data.get("input_tokens"), "input_tokens", integer=True),
            output_tokens=_number(data.get("output_tokens"), "output_tokens", integer=True),
            seconds=_number(data.get("seconds"), "seconds", integer=False),
            total_tokens=_number(data.get("total_tokens"), "total_tokens", integer=True),
        )


@dataclass(frozen=True, slots=True)
class Transcription:
    """The transcribed ``text`` and its ``usage``; ``raw`` keeps the server's JSON as it came."""

    text: str
    usage: Usage = field(default_factory=Usage)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, payload: Any) -> Transcription:
        """Parse a 200 body; anything that is not ``{"text": str, ...}`` raises MalformedResponseError."""
        if not isinstance(payload, dict):
            raise MalformedResponseError(f"expected a JSON object with 'text', got {type(payload).__name__}")
        if "text" not in payload:
            keys = ", ".join(sorted(map(str, payload))[:8]) or "none"
            raise MalformedResponseError(f"the JSON answer has no 'text' field (keys: {keys})")
        text = payload["text"]
        if not isinstance(text, str):
            raise MalformedResponseError(f"'text' should be a string, got {type(text).__name__}")
        return cls(text=text, usage=Usage.from_json(payload.get("usage")), raw=payload)
