"""The model catalogue entries of ``GET /api/v1/models``, in OpenRouter's shape.

Example::

    from stt_frames.server.catalog import model_entry
    from stt_frames.server.engines import build_engines
    model_entry(build_engines()["fake/echo"], 0.006)["pricing"]["per_minute"]  # '0.006'
"""

from __future__ import annotations

from typing import Any

from .engines import Engine

__all__ = ["model_entry"]


def model_entry(engine: Engine, per_minute: float, *, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """One model of the list, priced at ``per_minute`` USD per audio minute.

    OpenRouter's prices are strings in USD per unit: ``audio`` is per second of audio here; ``per_minute``
    is this server's own field. ``supported_languages``, ``default_language`` and ``limits``
    (``{"max_audio_seconds", "max_body_bytes"}``: what one request may carry) are ours too.

    Example::

        model_entry(engine, 0.0)["architecture"]["output_modalities"]  # ['transcription']
    """
    return {
        "id": engine.id,
        "canonical_slug": engine.id,
        "name": engine.name,
        "created": 0,
        "description": engine.description,
        "context_length": None,
        "architecture": {
            "modality": "audio->transcription",
            "input_modalities": ["audio"],
            "output_modalities": ["transcription"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": "0",
            "completion": "0",
            "request": "0",
            "audio": f"{per_minute / 60:.12g}",
            "per_minute": f"{per_minute:.12g}",
        },
        "top_provider": {"context_length": None, "max_completion_tokens": None, "is_moderated": False},
        "supported_parameters": ["language", "temperature"],
        "supported_languages": sorted(engine.languages),
        "default_language": engine.default_language,
        "limits": dict(limits) if limits is not None else None,
    }
