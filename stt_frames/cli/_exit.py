"""The exit status of ``stt-frames``, declared once: ``ExitCode``; ``--help``, docs/cli.md and the code derive from it.

Example::

    from stt_frames.cli import ExitCode
    ExitCode.AUTH, ExitCode.AUTH.description  # (3, 'the API rejected the key (401), ...')
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "exit_codes_help", "exit_codes_markdown"]


class ExitCode(IntEnum):
    """What ``stt-frames`` exits with, for scripts; each member's ``description`` is what the docs say of it."""

    _value_: int
    description: str

    def __new__(cls, value: int, description: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    OK = 0, "success: every row was transcribed"
    ROW_ERRORS = 1, "finished, but some rows failed (see the error column); `serve`: could not start"
    USAGE = 2, "bad arguments: unknown option, missing input, unknown column, unreadable file, bad URL"
    AUTH = 3, "the API rejected the key (401), no credits left (402), or no OPENROUTER_API_KEY for OpenRouter"
    API = 4, "another error stopped the run: API (e.g. 404 unknown model), cache, output, missing extra"
    INTERRUPTED = 130, "interrupted (Ctrl-C): finished rows are cached; run the same command to resume"


def exit_codes_help() -> str:
    """The ``exit status:`` block of ``--help``: one line per ``ExitCode``."""
    return "exit status:\n" + "\n".join(f"  {code.value:<4} {code.description}" for code in ExitCode)


def exit_codes_markdown() -> str:
    """The exit-status table of docs/cli.md: one row per ``ExitCode``."""
    rows = [f"| {code.value} | {code.description} |" for code in ExitCode]
    return "\n".join(["| status | meaning |", "| --- | --- |", *rows])
