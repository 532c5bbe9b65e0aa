"""The ``stt-frames`` command line. Subcommands: ``serve`` (the local server).

Each subcommand lives in its own module and registers itself with ``add_parser(subparsers)``;
its handler is ``args.func(args) -> exit status``. A bad argument is one line on stderr, exit status 2.

Example (a shell)::

    stt-frames serve --port 8787
    stt-frames serve --help
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ._version import __version__

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump): ``prog: error: message (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered.

    Example::

        build_parser().parse_args(["serve", "--port", "0"]).port  # 0
    """
    from .server import cli as serve_cli

    parser = _Parser(prog="stt-frames", description="Transcribe audio with OpenRouter speech-to-text.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve_cli.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Example::

        main(["serve", "--help"])
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
