"""``stt-frames cache info`` and ``stt-frames cache clear``: look at and prune the answer cache.

Example (a shell)::

    stt-frames cache info --json
    stt-frames cache clear --model fake/echo --older-than-days 30 --yes
    stt-frames cache copy ~/.cache/stt_frames s3://bucket/stt-cache     # SQLite -> object store (and back)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import ENVIRONMENT_HELP, Parser, UsageError, cache_dir, days
from ._exit import ExitCode

__all__ = ["add_cache", "format_bytes"]

_CACHE_DIR_HELP = (
    "the cache to use: a folder (default: $STT_FRAMES_CACHE_DIR, else the user cache dir; its parent must exist) "
    "or an object-store URL (s3://bucket/prefix, file:///shared/dir ...)"
)


def _cache_location(text: str) -> str:
    """``--cache-dir`` and ``copy``'s arguments: an fsspec URL as it is, else a folder checked by ``cache_dir``."""
    from ..cache_store import is_cache_url

    return text.strip() if is_cache_url(text.strip()) else cache_dir(text)


def _open(location: str | None) -> Any:
    """The cache at ``location``: an ``ObjectCache`` for a URL, else SQLite."""
    from ..cache import Cache
    from ..cache_store import ObjectCache, is_cache_url

    return ObjectCache(location) if location is not None and is_cache_url(location) else Cache(location)


def format_bytes(n: int) -> str:
    """A size for people: ``format_bytes(1536)`` is ``'1.5 KB'``."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


def add_cache(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``cache`` (with ``info`` and ``clear``) to the subcommands."""
    p = subparsers.add_parser(
        "cache",
        help="show or clear the answer cache",
        description="The answer cache holds every successful answer (keyed by the audio's hash and the "
        "request's parameters), so reruns and resumed runs cost nothing.",
        epilog=ENVIRONMENT_HELP,
    )
    p.set_defaults(func=lambda args: _no_action(p))
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)

    info = actions.add_parser(
        "info",
        help="where the cache is, how many answers it holds (per model), its size",
        description="Show where the cache is, how many answers it holds in all and per model, and its size.",
        epilog='example:\n  stt-frames cache info --json | jq .entries\n\n--json prints {"path", "entries", '
        '"models": {model: count}, "files", "bytes"}.',
    )
    info.add_argument("--cache-dir", type=_cache_location, metavar="DIR", help=_CACHE_DIR_HELP)
    info.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    info.set_defaults(func=run_info, prog=info.prog)

    clear = actions.add_parser(
        "clear",
        help="delete cached answers (all, one model's, or older ones)",
        description="Delete cached answers: all of them, or only one model's, or only those older than some "
        "days (both filters combine). Asks first unless --yes; without a terminal, --yes is required.",
        epilog="example:\n  stt-frames cache clear --model openai/whisper-1 --older-than-days 30 --yes",
    )
    clear.add_argument("--cache-dir", type=_cache_location, metavar="DIR", help=_CACHE_DIR_HELP)
    clear.add_argument("--model", metavar="MODEL", help="only this model's answers")
    clear.add_argument("--older-than-days", type=days, metavar="D", help="only answers older than D days")
    clear.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(func=run_clear, prog=clear.prog)

    copy = actions.add_parser(
        "copy",
        help="copy cached answers from one cache to another (SQLite and object store, either way)",
        description="Copy every cached answer (or one model's) from SOURCE to TARGET, keys and creation times "
        "unchanged, so a run against TARGET finds what it would have found in SOURCE. Each is a cache folder "
        "(SQLite) or an object-store URL (s3://bucket/prefix, gs://..., file:///dir). Entries already in TARGET "
        "under the same key are replaced.",
        epilog="example:\n  stt-frames cache copy ~/.cache/stt_frames s3://my-bucket/stt-cache\n"
        "  stt-frames cache copy s3://my-bucket/stt-cache ./local-cache --model openai/whisper-1",
    )
    copy.add_argument("source", type=_cache_location, metavar="SOURCE", help="the cache to copy from")
    copy.add_argument("target", type=_cache_location, metavar="TARGET", help="the cache to copy into")
    copy.add_argument("--model", metavar="MODEL", help="only this model's answers")
    copy.set_defaults(func=run_copy, prog=copy.prog)
    return p


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return ExitCode.USAGE


def run_info(args: argparse.Namespace) -> int:
    """Run ``stt-frames cache info``."""
    cache = _open(args.cache_dir)
    try:
        info = cache.info()
    finally:
        cache.close()
    if args.json:
        print(json.dumps(info, indent=2))
        return ExitCode.OK
    print(f"path     {info['path']}")
    print(f"entries  {info['entries']}")
    print(f"size     {format_bytes(info['bytes'])}")
    print(f"files    {info['files']} (audio files whose hash is remembered)")
    if info["models"]:
        width = max(len(m) for m in info["models"])
        print("models")
        for model, count in info["models"].items():
            print(f"  {model:<{width}}  {count}")
    return ExitCode.OK


def run_clear(args: argparse.Namespace) -> int:
    """Run ``stt-frames cache clear``."""
    what = "all cached answers"
    if args.model is not None:
        what = f"cached answers of {args.model}"
    if args.older_than_days is not None:
        what += f" older than {args.older_than_days:g} days"
    cache = _open(args.cache_dir)
    try:
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to delete {what} without --yes (stdin is not a terminal)")
            answer = input(f"Delete {what} from {cache.path}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return ExitCode.OK
        n = cache.clear(model=args.model, older_than_days=args.older_than_days)
    finally:
        cache.close()
    print(f"deleted {n} cached answer{'s' * (n != 1)} from {cache.path}")
    return ExitCode.OK


def run_copy(args: argparse.Namespace) -> int:
    """Run ``stt-frames cache copy``."""
    from ..cache_store import copy_entries

    if args.source == args.target:
        raise UsageError(f"SOURCE and TARGET are the same cache: {args.source}")
    source, target = _open(args.source), _open(args.target)
    try:
        n = copy_entries(source, target, model=args.model)
    finally:
        source.close()
        target.close()
    print(f"copied {n} cached answer{'s' * (n != 1)} from {source.path} to {target.path}")
    return ExitCode.OK
