"""Run every benchmark module and write bench/results.md (tables) and bench/results.json (everything).

Usage::

    python -m bench            # the full run (a few minutes)
    python -m bench --quick    # a fast smoke run with fewer requests
    python -m bench --only client_throughput
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

#: Benchmark modules, each with ``run(quick: bool) -> list[dict]``.
MODULES: tuple[str, ...] = ("bench.client_throughput",)

HERE = Path(__file__).resolve().parent
#: Columns shown first (in this order) when a row has them; ``notes`` always goes last.
LEADING = ("scenario", "client", "seconds", "rps", "pct_of_ideal")
#: Columns kept in results.json but left out of the Markdown table.
JSON_ONLY = ("runs_s", "loadavg")


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
    if value is None:
        return "–"
    if isinstance(value, float):
        if key == "rps":
            return f"{value:,.0f}"
        if key.startswith("pct"):
            return f"{value:.1f}%"
        if key.endswith("per_req"):
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Table columns: the leading ones present, then every other key in first-seen order, then notes."""
    seen: list[str] = []
    for row in rows:
        seen += [k for k in row if k not in seen]
    lead = [k for k in LEADING if k in seen]
    rest = [k for k in seen if k not in lead and k not in JSON_ONLY and k not in ("notes", "module")]
    return lead + rest + (["notes"] if "notes" in seen else [])


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {report['date']} with `{report['command']}`"
        + (" (quick mode: fewer requests, for a smoke run only)." if report["quick"] else "."),
        f"Machine: {m['nproc']} CPUs usable ({m['cpu_model']}), Python {m['python']}, {m['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f". Load average at start: {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'] or [])}.",
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
        rows = section["rows"]
        if rows:
            cols = columns(rows)
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "|".join(" --- " for _ in cols) + "|")
            for row in rows:
                lines.append("| " + " | ".join(_fmt(c, row.get(c)) for c in cols) + " |")
            lines.append("")
        lines.append(f"_{section['seconds']:.0f} s to run._")
        lines.append("")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests: a smoke run, not a measurement")
    ap.add_argument("--only", action="append", help="run only this module (repeatable), e.g. client_throughput")
    ap.add_argument("--out", type=Path, default=HERE, help="directory for results.md and results.json")
    args = ap.parse_args(argv)

    modules = [m for m in MODULES if not args.only or m.rsplit(".", 1)[-1] in args.only or m in args.only]
    if not modules:
        ap.error(f"no benchmark module matches {args.only}; there are {', '.join(MODULES)}")
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "machine": machine_info(),
        "modules": {},
    }
    failed = False
    for name in modules:
        started = time.perf_counter()
        section: dict[str, Any] = {"rows": [], "doc": "", "columns": {}, "error": None}
        try:
            mod = importlib.import_module(name)
            section["doc"] = (mod.__doc__ or "").strip().replace("``", "`")
            section["columns"] = dict(getattr(mod, "COLUMNS", {}))
            section["rows"] = [{**row, "module": name} for row in mod.run(quick=args.quick)]
        except Exception:
            failed = True
            section["error"] = traceback.format_exc()
            print(section["error"], file=sys.stderr)
        section["seconds"] = time.perf_counter() - started
        report["modules"][name] = section
    report["machine"]["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "results.json", json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    _write(args.out / "results.md", text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
