"""The ``stt-frames`` command line: ``transcribe``, ``compare``, ``cache info|clear`` and ``serve``.

Each subcommand registers itself with ``add_*(subparsers)`` (``transcribe`` and ``compare`` in
``_cli_run``, ``cache`` in ``_cli_cache``, ``serve`` in ``server/cli``); its handler is
``args.func(args) -> exit status``. Progress bars and summaries go to stderr; results (the
leaderboard, ``cache info``) go to stdout. Errors are one line on stderr, ``stt-frames ...: error: ...``,
never a traceback, and never show the API key.

Exit status, for scripts:

====  ===========================================================================================
0     success: every row was transcribed
1     finished, but some rows failed (their ``error`` column says why); ``serve``: could not start
2     bad arguments: unknown option, missing input file, unknown column, unreadable file, bad URL
3     the API rejected the key (401) or the account has no credits (402); also: no key for OpenRouter
4     another error stopped the run: the API (e.g. 404 unknown model), the cache, the output file,
      a missing optional package
130   interrupted (Ctrl-C): finished rows are cached, so the same command resumes
====  ===========================================================================================

Settings: ``OPENROUTER_API_KEY`` is the key; ``--base-url``, else ``OPENROUTER_BASE_URL``, else
OpenRouter is the API root; ``--cache-dir``, else ``STT_FRAMES_CACHE_DIR``, else the user cache dir
is the cache. ``docs/cli.md`` is generated from the help text: ``python -m stt_frames.cli --help-markdown``.

Example (a shell)::

    stt-frames serve --port 8787 &
    stt-frames transcribe data/samples.csv --model fake/echo --base-url http://127.0.0.1:8787/api/v1 -o out.parquet
    stt-frames cache info
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final

from ._cli_common import (
    ENVIRONMENT_HELP,
    EXIT_API,
    EXIT_AUTH,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_ROW_ERRORS,
    EXIT_USAGE,
    CLIError,
    Formatter,
    Parser,
    one_line,
)
from ._version import __version__

__all__ = [
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_ROW_ERRORS",
    "EXIT_USAGE",
    "build_parser",
    "help_markdown",
    "main",
]

#: Width the help text is rendered at for ``docs/cli.md`` (the terminal's width otherwise).
DOCS_WIDTH: Final = 100

_PROG: Final = "stt-frames"


class _MarkdownAction(argparse.Action):
    """``--help-markdown``: print the Markdown reference of every command (docs/cli.md) and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(help_markdown())
        parser.exit(EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered.

    Example::

        build_parser().parse_args(["serve", "--port", "0"]).port  # 0
    """
    from ._cli_cache import add_cache
    from ._cli_run import add_compare, add_transcribe
    from .server import cli as serve_cli

    parser = Parser(
        prog=_PROG,
        description="Transcribe a column of audio files (a CSV, a Parquet file or a folder) with speech-to-text "
        "models on OpenRouter, or on the bundled local server. Each command has its own --help.",
        epilog=f"""example:
  export OPENROUTER_API_KEY=sk-or-...
  stt-frames transcribe data/ --model openai/whisper-large-v3 -o out.parquet

{EXIT_CODES_HELP}

{ENVIRONMENT_HELP}""",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--help-markdown", action=_MarkdownAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_transcribe(subparsers)
    add_compare(subparsers)
    add_cache(subparsers)
    serve_cli.add_parser(subparsers)
    return parser


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from _walk(child)


def help_markdown() -> str:
    """The Markdown reference of every command, from the real ``--help`` text (this is ``docs/cli.md``).

    Example::

        Path("docs/cli.md").write_text(help_markdown())
    """
    parts = [
        "# stt-frames command line reference\n",
        "Generated from the `--help` text of every command by `python -m stt_frames.cli --help-markdown > "
        "docs/cli.md`; `tests/test_cli.py` fails when this file is out of date.\n",
    ]
    for parser in _walk(build_parser()):
        parser.formatter_class = functools.partial(Formatter, width=DOCS_WIDTH)
        parts.append(f"## {parser.prog}\n\n```\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def _status_of(exc: Exception) -> int:
    from .errors import AuthenticationError, PaymentRequiredError

    return EXIT_AUTH if isinstance(exc, AuthenticationError | PaymentRequiredError) else EXIT_API


#: What to do about an API error, said for a shell rather than for Python (``errors`` holds the Python hints).
_SHELL_HINTS: Final = {
    401: "check OPENROUTER_API_KEY: export it in the shell that runs stt-frames (or point --base-url at a "
    "local server, which needs none)",
}


def _for_the_command_line(exc: Exception) -> str:
    """The error's message with its Python advice ("pass api_key=...") replaced by the shell's."""
    from .errors import APIStatusError

    text = str(exc)
    if isinstance(exc, APIStatusError) and exc.status in _SHELL_HINTS:
        text = text.replace(f"; {exc.hint}", f"; {_SHELL_HINTS[exc.status]}", 1)
    return text


def _interrupted(prog: str, exc: KeyboardInterrupt) -> str:
    partial = getattr(exc, "partial", None)
    done = ""
    if partial is not None and "error" in getattr(partial, "columns", ()):
        done = f" {int(partial['error'].isna().sum())} rows finished and are cached;"
    return f"{prog}: interrupted;{done} run the same command again to resume (only the missing rows are sent)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Bad arguments raise SystemExit(2) from the parser, as argparse does.

    Example::

        main(["cache", "info", "--json"])
    """
    from .errors import STTError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = getattr(args, "prog", None) or f"{_PROG} {args.command}"
    try:
        status: int = args.func(args)
    except KeyboardInterrupt as exc:  # stt_frames.Interrupted included
        print(_interrupted(prog, exc), file=sys.stderr)
        return EXIT_INTERRUPTED
    except CLIError as exc:
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.status
    except STTError as exc:
        print(f"{prog}: error: {one_line(_for_the_command_line(exc))}", file=sys.stderr)
        return _status_of(exc)
    except OSError as exc:  # the output or cache folder cannot be written
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_API
    return status


if __name__ == "__main__":
    sys.exit(main())
