"""Pieces shared by the ``stt-frames`` subcommands: argument types, shared options, one-line errors, the client.

Example::

    from stt_frames.cli._common import usd
    usd("0.50")  # 0.5
"""

from __future__ import annotations

import argparse
import math
import os
import re
import textwrap
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from ..errors import CLIError, MissingKeyError, UsageError
from ._exit import ExitCode

__all__ = [
    "DOCUMENTED_CHUNK_SECONDS",
    "DOCUMENTED_CONCURRENCY",
    "DOCUMENTED_MAX_UPLOAD_MB",
    "ENVIRONMENT_HELP",
    "CLIError",
    "Formatter",
    "MissingKeyError",
    "Parser",
    "UsageError",
    "add_run_options",
    "base_url",
    "cache_arg",
    "cache_dir",
    "chunk_seconds",
    "comma_list",
    "days",
    "language",
    "languages_list",
    "make_client",
    "mebibytes",
    "one_line",
    "positive_int",
    "run_options",
    "seconds",
    "usd",
]

#: Shown in ``--help``; the value in force is ``stt_frames.frame.DEFAULT_CONCURRENCY`` (a test keeps them equal).
#: Not imported from there so that ``--help`` and argument errors need neither pandas nor httpx.
DOCUMENTED_CONCURRENCY: Final = 16
#: Shown in ``--help`` like ``DOCUMENTED_CONCURRENCY``; in force: ``stt_frames.chunking.DEFAULT_CHUNK_SECONDS``
#: and ``DEFAULT_MAX_UPLOAD_BYTES`` (in MiB here). A test keeps them equal.
DOCUMENTED_CHUNK_SECONDS: Final = 600.0
DOCUMENTED_MAX_UPLOAD_MB: Final = 25.0

ENVIRONMENT_HELP: Final = """environment:
  OPENROUTER_API_KEY    the API key (sent only to the API, never printed)
  OPENROUTER_BASE_URL   the API root when --base-url is not given (default: OpenRouter's)
  STT_FRAMES_CACHE_DIR  the answer cache when --cache-dir is not given (default: the user cache dir)"""


class Formatter(argparse.HelpFormatter):
    """Help text that fills prose paragraphs and keeps indented blocks (tables, examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in textwrap.dedent(text).strip("\n").split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines):  # a table or an example: as written
                blocks.append("\n".join(indent + line for line in lines))
            else:
                words = " ".join(block.split())
                blocks.append(textwrap.fill(words, width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(blocks)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump): ``prog: error: message (see --help)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str) -> str:
    """``text`` on one line, with the API key (if it appears) replaced by ``***``.

    Example::

        one_line("a\\n  b")  # 'a b'
    """
    text = " ".join(str(text).split())
    key = (os.environ.get("OPENROUTER_API_KEY") or "").strip()
    return text.replace(key, "***") if key else text


# -- argument types -------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--concurrency``)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def usd(text: str) -> float:
    """An amount of USD >= 0 (``--max-cost``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount of USD >= 0 such as 0.50, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected an amount of USD >= 0 such as 0.50, got {text!r}")
    return value


def days(text: str) -> float:
    """A number of days >= 0 (``--older-than-days``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of days >= 0, got {text!r}")
    return value


def chunk_seconds(text: str) -> float | None:
    """Seconds of audio per request, 1 to 86400; ``none`` or ``off`` is None: never cut (``--chunk-seconds``)."""
    if text.strip().lower() in ("none", "off"):
        return None
    expected = f"expected a number of seconds between 1 and 86400, or none/off to never cut, got {text!r}"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not math.isfinite(value) or not 1 <= value <= 86_400:
        raise argparse.ArgumentTypeError(expected)
    return value


def mebibytes(text: str) -> float:
    """A size in MiB, at least 0.1 (``--max-upload-mb``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in MiB >= 0.1 such as 25, got {text!r}") from None
    if not math.isfinite(value) or value < 0.1:
        raise argparse.ArgumentTypeError(f"expected a size in MiB >= 0.1 such as 25, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A number of seconds > 0 (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 such as 300, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 such as 300, got {text!r}")
    return value


def base_url(text: str) -> str:
    """An http(s) URL with a host (``--base-url``)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        example = "http://127.0.0.1:8787/api/v1"
        raise argparse.ArgumentTypeError(f"expected an http(s) URL such as {example}, got {text!r}")
    return text.strip().rstrip("/")


def cache_dir(text: str) -> str:
    """A cache folder (or ``.sqlite3`` file) whose parent folder exists (``--cache-dir``).

    The folder itself is created when missing, but not its parents: ``--cache-dir /typo/dir`` is an error,
    not a new, empty cache somewhere unexpected.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder for the cache, got ''")
    path = os.path.abspath(os.path.expanduser(text.strip()))
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(
            f"the parent folder {parent} of {text!r} does not exist (a new cache folder is created only inside "
            "an existing one)"
        )
    if os.path.exists(path) and not os.path.isdir(path) and not path.endswith((".sqlite3", ".sqlite", ".db")):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    return text.strip()


def language(text: str) -> str | None:
    """A language code; ``auto`` (or empty) means auto-detect (None)."""
    value = text.strip()
    if value.lower() in ("", "auto"):
        return None
    if not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*", value):
        raise argparse.ArgumentTypeError(f"expected a language code such as en or pt-BR (or auto), got {text!r}")
    return value


def comma_list(text: str) -> list[str]:
    """Comma-separated non-empty items, duplicates dropped (``--models``)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names with no empty item, got {text!r}")
    return list(dict.fromkeys(items))


def languages_list(text: str) -> list[str | None]:
    """Comma-separated language codes; ``auto`` is auto-detect (``--languages``)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated language codes (or auto), got {text!r}")
    return list(dict.fromkeys(language(item) for item in items))


# -- options shared by transcribe and compare ------------------------------------------------------------


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Add the options every transcribing command takes: column, concurrency, cap, endpoint, cache, progress."""
    p.add_argument(
        "--column", default="path", metavar="COL", help="column of audio paths (default: path; for a folder, its name)"
    )
    p.add_argument(
        "--base-dir",
        metavar="DIR",
        help="folder that relative paths in INPUT are relative to (default: INPUT's own folder)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help=f"requests in flight (default {DOCUMENTED_CONCURRENCY}; halved on 429, grown back on success)",
    )
    p.add_argument(
        "--max-cost",
        type=usd,
        metavar="USD",
        help="spending cap for this run: no new request once it would be exceeded; unsent rows get an error",
    )
    p.add_argument(
        "--base-url",
        type=base_url,
        metavar="URL",
        help="API root (default: $OPENROUTER_BASE_URL, else OpenRouter); e.g. the URL `stt-frames serve` prints",
    )
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write the answer cache")
    cache.add_argument(
        "--cache-dir",
        type=cache_dir,
        metavar="DIR",
        help="answer cache to use (default: $STT_FRAMES_CACHE_DIR, else the user cache); its parent must exist",
    )
    p.add_argument("--refresh", action="store_true", help="re-send every row and overwrite its cached answer")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    long = p.add_argument_group(
        "long recordings",
        "A recording longer than --chunk-seconds, or larger than --max-upload-mb, is cut at the quietest point "
        "near each limit; the chunks are sent concurrently, each cached on its own, and joined back into one "
        "row (its chunks column says how many). A request whose answer was lost after its audio went out "
        "whole is sent again at most once; the summary counts those as possibly billed twice.",
    )
    long.add_argument(
        "--chunk-seconds",
        type=chunk_seconds,
        default=argparse.SUPPRESS,  # absent: transcribe_column's default; None: never cut
        metavar="S",
        help=f"longest audio per request in seconds (default {DOCUMENTED_CHUNK_SECONDS:g}); none or off: never "
        "cut, and a file too large to upload whole fails before anything is sent",
    )
    long.add_argument(
        "--max-upload-mb",
        type=mebibytes,
        metavar="MiB",
        help=f"largest audio upload per request, in MiB (default {DOCUMENTED_MAX_UPLOAD_MB:g}); a larger file "
        "is sent in chunks",
    )
    long.add_argument(
        "--upload-format",
        choices=("original", "flac", "opus"),
        help="original (default): a file that fits goes as it is, chunks as 16 kHz mono FLAC; flac or opus "
        "(24 kbps, about 10 MB per hour): everything re-encoded to 16 kHz mono",
    )
    long.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long to wait for each answer (default: 120 s + 1 s per second of the request's audio)",
    )


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``transcribe_column``/``compare`` that the shared options set.

    Example::

        run_options(args)  # {'cache': True, 'refresh': False, 'progress': True, 'max_cost': None}
    """
    options: dict[str, Any] = {
        "cache": cache_arg(args),
        "refresh": args.refresh,
        "progress": not args.no_progress,
        "max_cost": args.max_cost,
    }
    if args.concurrency is not None:  # else transcribe_column's own default
        options["concurrency"] = args.concurrency
    if "chunk_seconds" in vars(args):  # given: seconds, or None to never cut
        options["chunk_seconds"] = args.chunk_seconds
    if args.max_upload_mb is not None:
        options["max_upload_bytes"] = round(args.max_upload_mb * 2**20)
    if args.upload_format is not None:
        options["upload_format"] = args.upload_format
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if getattr(args, "base_dir", None) is not None:
        options["base_dir"] = args.base_dir
    return options


def cache_arg(args: argparse.Namespace) -> bool | str:
    """The ``cache=`` argument for ``transcribe_column`` from ``--no-cache`` / ``--cache-dir``."""
    if args.no_cache:
        return False
    return str(args.cache_dir) if args.cache_dir else True


def make_client(args: argparse.Namespace) -> Any:
    """A ``Client`` for ``--base-url`` (else ``OPENROUTER_BASE_URL``, else OpenRouter), keyed by the environment.

    Raises UsageError for a bad URL or an unsafe one (the key over plain http to a remote host), and
    MissingKeyError before anything is sent when OpenRouter itself is the target and no key is set.
    """
    from ..client import Client
    from ..errors import InsecureTransportError

    try:
        client = Client(base_url=args.base_url) if args.base_url else Client()
    except (ValueError, InsecureTransportError) as exc:
        raise UsageError(str(exc).replace("base_url", "--base-url / OPENROUTER_BASE_URL")) from None
    host = urlsplit(client.base_url).hostname or ""
    if not client.settings.api_key and (host == "openrouter.ai" or host.endswith(".openrouter.ai")):
        client.close()
        raise MissingKeyError(
            "OPENROUTER_API_KEY is not set: export it, or point --base-url at a local server (stt-frames serve)"
        )
    return client
