"""Run every benchmark module and write bench/results.md (tables) and bench/results.json (everything).

Usage::

    python -m bench            # the full run (about 25 minutes); also rewrites the README's bench section
    python -m bench --quick    # a smoke run with small inputs (under a minute); the README is left alone
    python -m bench --only end_to_end --only memory
    python -m bench --only long_audio --merge   # re-measure one module, keep the others of results.json

results.md opens with a summary (one line per scenario with a target: stt_frames' figure, the baselines
measured in the same run, the target and PASS/MISS), then a table per scenario. After a full run the same
summary replaces the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in README.md.

``--merge`` keeps the sections of the modules not run now from the existing results.json (each section
says when and with which command it was measured; the header says which modules came from which run), so
one module can be measured again without the whole run. A merged report that holds every module of a full
run also rewrites the README's section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

#: Benchmark modules, each with ``run(quick: bool) -> list[dict]`` (one row per scenario and contender) and
#: optionally ``COLUMNS`` (what each column means) and ``LEADING`` (the columns shown first).
MODULES: tuple[str, ...] = (
    "bench.end_to_end",  # scenarios 1 and 2: transcribe_column vs a sequential loop, the SDK, httpx, aiohttp, ideal
    "bench.cached_rerun",  # scenario 3: a fully cached rerun of 10,000 rows
    "bench.memory",  # scenario 4: peak RSS, 100 vs 400 clips of 2 MB
    "bench.pocketsphinx_rtfx",  # scenario 5: pocketsphinx RTFx through the server and alone; WER
    "bench.client_throughput",  # stt_frames.AsyncClient alone vs httpx and aiohttp (minimal aiohttp server)
    "bench.long_audio",  # scenarios 6-8: a 60-minute recording in chunks, a 3-hour WAV's memory, Opus vs original
    "bench.per_row",  # scenarios 10-11: client CPU per request; a cached rerun of 200,000 files (RSS, first update)
    "bench.whisper_real",  # scenario 9: real speech (data/real/): WER, RTFx, peak RSS of every local engine
    "bench.dask_cluster",  # scenarios 12-14: Dask, 1 vs 2 workers; one bill per audio, one cap; the budget actor
)

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
#: Columns shown first (in this order) when a module does not say; ``notes`` always goes last.
LEADING = ("client", "seconds", "best_s", "rps", "pct_of_ideal", "target", "verdict")
#: Columns kept in results.json but left out of the Markdown tables.
JSON_ONLY = ("scenario", "module", "role", "figure", "runs_s", "runs_net_mb", "loadavg")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {d: _version(d) for d in ("stt-frames", "httpx", "aiohttp", "httpx-aiohttp")},
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return "–"
    if isinstance(value, float):
        if key in ("rps", "extrapolated_s") or key.endswith("per_req"):
            return f"{value:,.0f}"
        if key.startswith("pct"):
            return f"{value:.1f}%"
        if key.endswith("_kb"):
            return f"{value:,.0f}"
        if key.endswith("_mb") or key in ("rtfx", "best_rtfx", "audio_s"):
            return f"{value:,.1f}"
        if key in ("wer_en", "wer"):
            return f"{100 * value:.1f}%"
        if key in ("seconds", "best_s"):
            return f"{value:.3f}" if value < 1 else f"{value:.2f}"
        return f"{value:.2f}"
    if key == "verdict":
        return f"**{value}**"
    return str(value).replace("|", "\\|")


def columns(rows: list[dict[str, Any]], leading: tuple[str, ...] = LEADING) -> list[str]:
    """Table columns: the leading ones present, then every other key in first-seen order, then notes.

    A column with no value in any of ``rows`` is left out.
    """
    seen: list[str] = []
    for row in rows:
        seen += [k for k in row if k not in seen and row[k] is not None]
    lead = [k for k in leading if k in seen]
    rest = [k for k in seen if k not in lead and k not in JSON_ONLY and k != "notes"]
    return lead + rest + (["notes"] if "notes" in seen else [])


def _table(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(c, row.get(c)) for c in cols) + " |" for row in rows]
    return lines


def by_scenario(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by their ``scenario``, in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("scenario", "")), []).append(row)
    return groups


def summary_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """One line per scenario that has a target: stt_frames' figure, the baselines, the target, the verdict."""
    out = []
    for section in report["modules"].values():
        for scenario, rows in by_scenario(section["rows"]).items():
            ours = next((r for r in rows if r.get("verdict")), None)
            if ours is None:
                continue
            baselines = [r["figure"] for r in rows if r is not ours and r.get("figure")]
            out.append(
                {
                    "scenario": scenario,
                    "stt_frames": ours.get("figure", ""),
                    "baselines": "; ".join(baselines),
                    "target": ours.get("target", ""),
                    "verdict": ours["verdict"],
                }
            )
    return out


def summary_table(report: dict[str, Any]) -> list[str]:
    lines = ["| Scenario | stt_frames | Baselines (same run) | Target | Result |", "| --- | --- | --- | --- | --- |"]
    for s in summary_rows(report):
        cells = [s["scenario"], s["stt_frames"], s["baselines"], s["target"], f"**{s['verdict']}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failed = [m for m, sec in report["modules"].items() if sec.get("error")]
    if failed:
        lines += ["", f"**Failed modules** (see bench/results.md): {', '.join(failed)}."]
    return lines


def machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_start"] or [])
    return (
        f"{m['nproc']} CPUs usable ({m['cpu_model']}), Python {m['python']} ({m['implementation']}), "
        f"{m['platform']}; load average at start {load}"
    )


def provenance(report: dict[str, Any]) -> str:
    """When and how the report was measured; for a merged report, which modules came from which run."""
    runs: dict[tuple[str, str], list[str]] = {}
    for module, section in report["modules"].items():
        key = (section.get("date", report["date"]), section.get("command", report["command"]))
        runs.setdefault(key, []).append(module)
    if len(runs) == 1:
        return f"Measured {report['date']} with `{report['command']}` in {report['seconds'] / 60:.1f} min"
    parts = [
        f"{', '.join(modules)} measured {date} with `{command}`"
        for (date, command), modules in sorted(runs.items(), key=lambda kv: kv[0][0])
    ]
    return "Merged report (`--merge`): " + "; ".join(parts)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        provenance(report)
        + (" (quick mode: small inputs and one run each, a smoke run only)." if report["quick"] else "."),
        f"Machine: {machine_line(report)}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        *(
            [f"Machine of the sections kept by `--merge`: {machine_line({'machine': report['kept_machine']})}."]
            if report.get("kept_machine")
            else []
        ),
        "",
        "## Summary",
        "",
        "Each figure is the median of the runs; every baseline was measured in the same run "
        "(each row's server is in its scenario's table below).",
        "",
        *summary_table(report),
        "",
    ]
    for module, section in report["modules"].items():
        lines += [f"## {module}", ""]
        if section.get("doc"):
            lines += [section["doc"], ""]
        if section.get("columns"):
            lines += [f"- `{k}`: {v}" for k, v in section["columns"].items()] + [""]
        if section.get("error"):
            lines += ["**Failed:**", "", "```", section["error"].rstrip(), "```", ""]
        leading = tuple(section.get("leading") or LEADING)
        for scenario, rows in by_scenario(section["rows"]).items():
            lines += [f"### {scenario}", "", *_table(rows, columns(rows, leading)), ""]
        lines += [f"_{section['seconds']:.0f} s to run._", ""]
    return "\n".join(lines)


def readme_section(report: dict[str, Any]) -> str:
    """The text between the README's bench markers: the summary table of this run, with date and machine."""
    return "\n".join(
        [
            (
                f"Latest full run: {report['date']}, `make bench` ({report['seconds'] / 60:.1f} min), "
                if not report.get("merged")
                else f"{provenance(report)}, "
            )
            + f"generated by `bench/__main__.py`; machine: {machine_line(report)}. "
            "Figures are medians of up to 3 interleaved runs; every table, column and server in "
            "[bench/results.md](bench/results.md).",
            "",
            *summary_table(report),
        ]
    )


def update_readme(path: Path, section: str) -> bool:
    """Replace the text between the bench markers of ``path``; False (and nothing written) without markers."""
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    head = text[: start + len(README_START)]
    _write(path, f"{head}\n{section}\n{text[end:]}")
    return True


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def merge(report: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """``report`` with the sections of ``previous`` for the modules it did not run, in ``MODULES`` order."""
    if previous.get("quick") != report["quick"]:
        raise ValueError(f"cannot merge a quick={report['quick']} run into a quick={previous.get('quick')} report")
    sections: dict[str, Any] = {}
    for name in [*MODULES, *previous["modules"], *report["modules"]]:
        if name in sections:
            continue
        if name in report["modules"]:
            sections[name] = report["modules"][name]
        elif name in previous["modules"] and name in MODULES:
            old = previous["modules"][name]
            sections[name] = {"date": previous["date"], "command": previous["command"], **old}
    return {**report, "modules": sections, "merged": True, "kept_machine": previous["machine"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, one run each: a smoke run, not a measurement")
    ap.add_argument("--only", action="append", help="run only this module (repeatable), e.g. end_to_end")
    ap.add_argument("--out", type=Path, default=HERE, help="directory for results.md and results.json")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README's bench section")
    ap.add_argument(
        "--merge", action="store_true", help="keep the other modules' sections of the existing results.json"
    )
    args = ap.parse_args(argv)

    modules = [m for m in MODULES if not args.only or m.rsplit(".", 1)[-1] in args.only or m in args.only]
    if not modules:
        ap.error(f"no benchmark module matches {args.only}; there are {', '.join(MODULES)}")
    command = " ".join(
        [
            "python -m bench",
            *(["--quick"] if args.quick else []),
            *(f"--only {o}" for o in args.only or []),
            *(["--merge"] if args.merge else []),
        ]
    )
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": args.quick,
        "machine": machine_info(),
        "modules": {},
    }
    started_all = time.perf_counter()
    failed = False
    for name in modules:
        started = time.perf_counter()
        section: dict[str, Any] = {
            "rows": [],
            "doc": "",
            "columns": {},
            "leading": None,
            "error": None,
            "date": report["date"],
            "command": command,
        }
        try:
            mod = importlib.import_module(name)
            section["doc"] = (mod.__doc__ or "").strip().replace("``", "`")
            section["columns"] = dict(getattr(mod, "COLUMNS", {}))
            section["leading"] = list(getattr(mod, "LEADING", LEADING))
            section["rows"] = [{**row, "module": name} for row in mod.run(quick=args.quick)]
        except Exception:
            failed = True
            section["error"] = traceback.format_exc()
            print(section["error"], file=sys.stderr)
        section["seconds"] = time.perf_counter() - started
        report["modules"][name] = section
    report["seconds"] = time.perf_counter() - started_all
    report["machine"]["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge and (args.out / "results.json").exists():
        report = merge(report, json.loads((args.out / "results.json").read_text()))
    complete = not args.only or (args.merge and all(m in report["modules"] for m in MODULES))
    _write(args.out / "results.json", json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    _write(args.out / "results.md", text)
    print(text)
    if args.quick or not complete or args.no_readme:
        print("README.md not updated (only a full run is recorded there)", file=sys.stderr)
    elif not update_readme(README, readme_section(report)):
        print(f"README.md has no {README_START} ... {README_END} markers: not updated", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
