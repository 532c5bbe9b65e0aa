"""``stt-frames transcribe`` and ``stt-frames compare``: read the input, run, write Parquet, summarise.

INPUT is a CSV (``.csv``, ``.tsv``, optionally compressed: ``.csv.gz`` ...), a Parquet file
(``.parquet``, ``.pq``) or a folder. A folder becomes one column (``--column``, default ``path``) of the
audio files found under it, recursively and sorted, with a contract extension (wav mp3 flac m4a ogg webm
aac); hidden files and folders are skipped. In a CSV or Parquet file, a relative path that does not exist
relative to the current directory but does relative to the INPUT file's folder is read from there (so
``data/samples.csv`` with ``en/a.wav`` works from anywhere); the output's path column holds the path as read.

Example (a shell)::

    stt-frames transcribe data/samples.csv --model openai/whisper-large-v3 \\
      --language-column language --max-cost 0.50 -o out.parquet
    stt-frames compare data/ --models fake/echo,local/pocketsphinx --languages auto,en -o runs/
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio import FORMATS, find_audio
from ._common import (
    ENVIRONMENT_HELP,
    UsageError,
    add_run_options,
    comma_list,
    language,
    languages_list,
    make_client,
    run_options,
)
from ._exit import ExitCode, exit_codes_help

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AUDIO_SUFFIXES", "add_compare", "add_transcribe", "load_input"]

#: File name endings a folder INPUT is searched for.
AUDIO_SUFFIXES: tuple[str, ...] = tuple(f".{fmt}" for fmt in FORMATS)
_CSV = (".csv", ".tsv")
_COMPRESSED = ("", ".gz", ".bz2", ".zip", ".xz", ".zst")
_PARQUET = (".parquet", ".pq")

_INPUT_HELP = (
    "a CSV, a Parquet file, or a folder of audio files (searched recursively for "
    f"{' '.join(FORMATS)}); relative paths in a file are tried against the current directory, "
    "then against the file's folder"
)


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    name = path.name.lower()
    try:
        if any(name.endswith(ext + comp) for ext in _CSV for comp in _COMPRESSED):
            sep = "\t" if any(name.endswith(".tsv" + comp) for comp in _COMPRESSED) else ","
            return pd.read_csv(path, sep=sep)
        if name.endswith(_PARQUET):
            return pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        kind = "Parquet" if name.endswith(_PARQUET) else "CSV"
        raise UsageError(f"cannot read {kind} file {str(path)!r}: {exc}") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise UsageError(f"cannot read {str(path)!r}: {type(exc).__name__}: {exc}") from None
    raise UsageError(f"INPUT must be a .csv, .tsv or .parquet file or a folder of audio files, got {str(path)!r}")


def _resolve_paths(values: pd.Series, base: Path) -> pd.Series:
    """Relative paths missing from the current directory but present under ``base``, rewritten to ``base/p``."""
    if base in (Path(), Path(".")):
        return values

    def fix(v: Any) -> Any:
        if not isinstance(v, str) or not v.strip():
            return v
        p = Path(v).expanduser()
        if p.is_absolute() or p.exists() or not (base / p).exists():
            return v
        return str(base / p)

    return values.map(fix)


def load_input(path: str, column: str, base_dir: str | None = None) -> pd.DataFrame:
    """The DataFrame for INPUT: a CSV or Parquet file as is (paths resolved), or a folder's audio files.

    Example::

        load_input("data/samples.csv", "path")["path"][0]  # 'data/en/flite_slt_00.wav'
    """
    import pandas as pd

    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"INPUT {path!r} does not exist")
    if p.is_dir():
        files = find_audio(p)
        if not files:
            raise UsageError(f"no audio files ({', '.join(FORMATS)}) under the folder {path!r}")
        return pd.DataFrame({column: files})
    df = _read_table(p)
    if column not in df.columns:
        raise UsageError(f"--column {column!r} is not a column of {path!r}; columns are {list(df.columns)}")
    if base_dir is None:  # relative paths are relative to the input file's folder
        df[column] = _resolve_paths(df[column], p.parent)
    return df


def _check_columns(df: pd.DataFrame, source: str, **options: str | None) -> None:
    for option, name in options.items():
        if name is not None and name not in df.columns:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} {name!r} is not a column of {source!r}; columns are {list(df.columns)}")


def _add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: print the files, audio hours, bytes and requests to send, rows already cached, "
        "price per minute and projected cost (-o not needed)",
    )


def _print_estimate(table: pd.DataFrame, prog: str) -> int:
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", None, "display.precision", 4):
        print(table.to_string(index=False))
    print(f"{prog}: dry run: nothing was sent", file=sys.stderr)
    return ExitCode.OK


def _check_output(path: str | None, *, folder: bool) -> None:
    if not path:
        raise UsageError("-o/--output is required (or --dry-run to send nothing)")
    p = Path(path)
    if not folder and p.is_dir():
        raise UsageError(f"-o {path!r} is a folder; give a file name such as out.parquet")
    if not folder:
        from ..results import output_format

        try:
            output_format(p)
        except ValueError as exc:
            raise UsageError(f"-o: {exc}") from None
    if folder and p.exists() and not p.is_dir():
        raise UsageError(f"-o {path!r} is a file; compare writes a folder (a partitioned Parquet dataset)")


def _summary(out: pd.DataFrame) -> str:
    errors = out["error"].notna()
    cached = out["cached"].fillna(False).astype(bool) & ~errors
    spent = float(out.loc[~cached & ~errors, "cost"].fillna(0).sum())
    n = len(out)
    text = f"{n} row{'s' * (n != 1)}, {int(errors.sum())} failed, {int(cached.sum())} cached, ${spent:.4f} spent"
    run = out.attrs.get("stt_frames", {})  # what was sent: transcribe_column's counts, or compare's totals
    sent = []
    if run.get("requests"):
        requests = int(run["requests"])
        uploaded = run.get("uploaded_bytes", 0) / 1e6
        sent.append(f"{requests} request{'s' * (requests != 1)} sent, {uploaded:,.1f} MB uploaded")
    if run.get("possibly_billed_twice"):
        sent.append(f"{int(run['possibly_billed_twice'])} possibly billed twice (sent again after a lost answer)")
    return "; ".join([text, ", ".join(sent)]) if sent else text


def _first_errors(out: pd.DataFrame, column: str, limit: int = 3) -> list[str]:
    failed = out[out["error"].notna()]
    lines = [f"  {row[column]}: {row['error']}" for _, row in failed.head(limit).iterrows()]
    if len(failed) > limit:
        lines.append(f"  ... and {len(failed) - limit} more (see the error column)")
    return lines


# -- transcribe ------------------------------------------------------------------------------------------


def add_transcribe(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``transcribe`` to the subcommands."""
    p = subparsers.add_parser(
        "transcribe",
        help="transcribe a column of audio paths (or a folder) to a Parquet file",
        description="Transcribe the audio files named in a column of INPUT with one model and write the rows, "
        "with text, seconds, tokens, cost and error columns added, to a Parquet file (read it with "
        "stt_frames.read_results or pandas). Answers are cached: a rerun sends only what is missing. "
        "A summary goes to stderr at the end.",
        epilog=f"""example:
  stt-frames transcribe data/samples.csv --model openai/whisper-large-v3 \\
      --language-column language --max-cost 0.50 -o out.parquet

{exit_codes_help()}

{ENVIRONMENT_HELP}""",
    )
    p.add_argument("input", metavar="INPUT", help=_INPUT_HELP)
    p.add_argument("--model", required=True, metavar="MODEL", help="model id, e.g. openai/whisper-large-v3")
    p.add_argument(
        "--language", type=language, metavar="LANG", help="language code for every row (default: auto-detect)"
    )
    p.add_argument(
        "--language-column", metavar="COL", help="column of per-row language codes (--language fills empty ones)"
    )
    add_run_options(p)
    p.add_argument("-o", "--output", metavar="OUT.parquet", help="file to write: .parquet, .csv or .jsonl (required)")
    _add_dry_run(p)
    p.set_defaults(func=run_transcribe, prog=p.prog)
    return p


def run_transcribe(args: argparse.Namespace) -> int:
    """Run ``stt-frames transcribe``; returns 0, or 1 when some rows failed."""
    from ..frame import transcribe_column

    if not args.dry_run:
        _check_output(args.output, folder=False)
    df = load_input(args.input, args.column, args.base_dir)
    _check_columns(df, args.input, language_column=args.language_column)
    with make_client(args) as client:
        out = transcribe_column(
            df,
            args.column,
            model=args.model,
            language=args.language,
            language_column=args.language_column,
            output=None if args.dry_run else args.output,
            client=client,
            dry_run=args.dry_run,
            **run_options(args),
        )
    if args.dry_run:
        return _print_estimate(out, args.prog)
    print(f"{args.prog}: wrote {args.output}: {_summary(out)}", file=sys.stderr)
    for line in _first_errors(out, args.column):
        print(line, file=sys.stderr)
    return ExitCode.ROW_ERRORS if out["error"].notna().any() else ExitCode.OK


# -- compare ---------------------------------------------------------------------------------------------


def add_compare(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``compare`` to the subcommands."""
    p = subparsers.add_parser(
        "compare",
        help="run models x languages over INPUT, score against references, print a leaderboard",
        description="Transcribe INPUT with every model x language, score each row against the --reference "
        "column (WER/CER; needs the 'eval' extra), write a Parquet dataset partitioned by model= and "
        "language= to DIR, and print the leaderboard to stdout. --max-cost caps the whole grid.",
        epilog=f"""example:
  stt-frames compare data/samples.csv --models openai/whisper-1,openai/whisper-large-v3 \\
      --languages auto,en --reference reference -o runs/whisper

{exit_codes_help()}

{ENVIRONMENT_HELP}""",
    )
    p.add_argument("input", metavar="INPUT", help=_INPUT_HELP)
    p.add_argument("--models", type=comma_list, required=True, metavar="A,B", help="comma-separated model ids")
    p.add_argument(
        "--languages",
        type=languages_list,
        default=[None],
        metavar="L1,L2",
        help="comma-separated language codes; auto = auto-detect (default: auto)",
    )
    p.add_argument("--reference", metavar="COL", help="column of reference transcripts to score against")
    add_run_options(p)
    p.add_argument("-o", "--output", metavar="DIR", help="folder for the partitioned dataset (required)")
    _add_dry_run(p)
    p.set_defaults(func=run_compare, prog=p.prog)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """Run ``stt-frames compare``; returns 0, or 1 when some rows failed."""
    import pandas as pd

    from .._compare import compare
    from .._leaderboard import leaderboard

    if not args.dry_run:
        _check_output(args.output, folder=True)
    df = load_input(args.input, args.column, args.base_dir)
    _check_columns(df, args.input, reference=args.reference)
    with make_client(args) as client:
        results = compare(
            df,
            args.column,
            models=args.models,
            languages=args.languages,
            reference=args.reference,
            output=None if args.dry_run else args.output,
            client=client,
            dry_run=args.dry_run,
            **run_options(args),
        )
    if args.dry_run:
        return _print_estimate(results, args.prog)
    board = leaderboard(results)
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.precision", 4):
        print(board.to_string(index=False))
    cells = f"{len(args.models)} model(s) x {len(args.languages)} language(s) x {len(df)} clip(s)"
    folder = os.path.join(args.output, "")  # "runs" and "runs/" both print as runs/
    print(f"{args.prog}: wrote {folder} ({cells}): {_summary(results)}", file=sys.stderr)
    shown = args.column if args.column in results.columns else f"input_{args.column}"
    for line in _first_errors(results, shown):
        print(line, file=sys.stderr)
    return ExitCode.ROW_ERRORS if results["error"].notna().any() else ExitCode.OK
