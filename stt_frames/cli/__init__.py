"""The ``stt-frames`` command line: ``transcribe``, ``compare``, ``cache info|clear`` and ``serve``.

The package, one module per concern:

- ``_exit``: ``ExitCode``, the exit statuses and what each means, declared once; ``main``, ``--help`` and
  docs/cli.md take them from there;
- ``_common``: argument types, the options shared by ``transcribe`` and ``compare``, one-line errors, the client;
- ``_transcribe``: ``transcribe`` and ``compare``; ``_cache``: ``cache info|clear``; ``_serve``: ``serve``
  (its server options come from ``stt_frames.server.ServerOptions``).

Each subcommand registers itself with ``add_*(subparsers)``; its handler is ``args.func(args) -> exit
status``. Progress bars and summaries go to stderr; results (the leaderboard, ``cache info``) go to
stdout. Errors are one line on stderr, ``stt-frames ...: error: ...``, never a traceback, and never show
the API key; ``main`` turns each kind of error into its ``ExitCode``.

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

from .._version import __version__
from ._common import ENVIRONMENT_HELP, CLIError, Formatter, Parser, one_line
from ._exit import ExitCode, exit_codes_help, exit_codes_markdown

__all__ = ["ExitCode", "build_parser", "help_markdown", "main"]

#: Width the help text is rendered at for ``docs/cli.md`` (the terminal's width otherwise).
DOCS_WIDTH: Final = 100

_PROG: Final = "stt-frames"


class _MarkdownAction(argparse.Action):
    """``--help-markdown``: print the Markdown reference of every command (docs/cli.md) and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(help_markdown())
        parser.exit(ExitCode.OK)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered.

    Example::

        build_parser().parse_args(["serve", "--port", "0"]).port  # 0
    """
    from ._cache import add_cache
    from ._serve import add_serve
    from ._transcribe import add_compare, add_transcribe

    parser = Parser(
        prog=_PROG,
        description="Transcribe a column of audio files (a CSV, a Parquet file or a folder) with speech-to-text "
        "models on OpenRouter, or on the bundled local server. Each command has its own --help.",
        epilog=f"""example:
  export OPENROUTER_API_KEY=sk-or-...
  stt-frames transcribe data/ --model openai/whisper-large-v3 -o out.parquet

{exit_codes_help()}

{ENVIRONMENT_HELP}""",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--help-markdown", action=_MarkdownAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_transcribe(subparsers)
    add_compare(subparsers)
    add_cache(subparsers)
    add_serve(subparsers)
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
    parts.append(
        f"## Exit status\n\nEvery command exits with one of these (`stt_frames.cli.ExitCode`):\n\n"
        f"{exit_codes_markdown()}\n"
    )
    return "\n".join(parts)


def _status_of(exc: Exception) -> ExitCode:
    """The exit status of an error from the library: AUTH for a rejected key or no credits, else API."""
    from ..errors import AuthenticationError, PaymentRequiredError

    return ExitCode.AUTH if isinstance(exc, AuthenticationError | PaymentRequiredError) else ExitCode.API


#: What to do about an API error, said for a shell rather than for Python (``errors`` holds the Python hints).
_SHELL_HINTS: Final = {
    401: "check OPENROUTER_API_KEY: export it in the shell that runs stt-frames (or point --base-url at a "
    "local server, which needs none)",
}


def _for_the_command_line(exc: Exception) -> str:
    """The error's message with its Python advice ("pass api_key=...") replaced by the shell's."""
    from ..errors import APIStatusError

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
    from ..errors import STTError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    prog = getattr(args, "prog", None) or f"{_PROG} {args.command}"
    try:
        status: int = args.func(args)
    except KeyboardInterrupt as exc:  # stt_frames.Interrupted included
        print(_interrupted(prog, exc), file=sys.stderr)
        return ExitCode.INTERRUPTED
    except CLIError as exc:
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.status
    except STTError as exc:
        print(f"{prog}: error: {one_line(_for_the_command_line(exc))}", file=sys.stderr)
        return _status_of(exc)
    except OSError as exc:  # the output or cache folder cannot be written
        print(f"{prog}: error: {one_line(str(exc))}", file=sys.stderr)
        return ExitCode.API
    return status
