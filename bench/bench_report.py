"""What a benchmark run reports: one row per figure, the markdown table, the
notes under it, the JSON dump, and the facts about the machine and tools the
header names.

A row holds a value per round for each side (``left`` is ncpaste, ``right``
the reference); a ratio is taken inside each round and the table shows the
median over the rounds with min-max.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

NOTES = (
    "ratio = ncpaste ÷ reference inside each round; ↑ higher is better, ↓ lower is better.",
    "fiche does not fsync and keeps one file per paste; ncpaste answers after an fsync'd LMDB commit.",
    "growth rows: the ncpaste column is the large store, the reference column the small one (same server).",
    "failures: requests that errored or answered wrongly, plus sampled pastes (every 20th) that did not read back byte for byte.",
    "ceiling: bench/ceiling_h11.py, bare trio + h11 (1 process) sending the paste's bytes and ncpaste's headers to "
    "every request, no store, routing, timeouts or logging; hypercorn: its trio worker (1 worker) serving the same "
    "from a minimal ASGI app (bench/hypercorn_app.py); it accepts one connection per turn of its event loop "
    "(trio's serve_listeners), which a short run's start shows in its p99.",
    "ceiling (trio) rows: bench/ceiling_nc.py, bare trio (1 process) reading each netcat connection to its FIN and "
    "answering a URL line; no store, keys, options, limits or timeouts, and its pastes are not read back. "
    "ncpaste's CPU per paste minus the ceiling's is what ncpaste's own work costs.",
    "p99 ÷ p50 rows: the named server's own p99 over its own p50 in one wrk run (for a reference, both columns "
    "are the reference's).",
    "cache front: deploy/nginx.conf as shipped (worker_processes auto, like nginx static; loopback ports, paths "
    "under the temp dir) in front of one ncpaste; the paste goes in through its netcat port and is warm in its "
    "micro-cache (X-Cache-Status: HIT).",
)


# ---------------------------------------------------------------------------
# Results: one row per figure, a value per round for each side
# ---------------------------------------------------------------------------


@dataclass
class Row:
    cell: str
    unit: str  # "/s", "ms", "s", "MiB", "x"
    better: str  # "higher" or "lower"
    reference: str
    left: dict[int, float] = field(default_factory=dict)
    right: dict[int, float] = field(default_factory=dict)
    fails_left: int = 0
    fails_right: int = 0
    skipped: str | None = None  # why the reference side did not run
    skipped_all: str | None = None  # why neither side ran
    errors: dict[int, str] = field(default_factory=dict)  # round -> what went wrong
    left_name: str = "ncpaste"
    # Where several references share a cell: the short name the ratio column
    # gives ("0.74× ceiling"), and the target for that ratio ("≥ 0.85").
    ratio_to: str = ""
    target: str = ""


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.raw: list[dict] = []
        self.errors: list[str] = []

    def row(self, key: str, cell: str, unit: str, better: str, reference: str, left_name: str = "ncpaste", *,
            ratio_to: str = "", target: str = "") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(cell, unit, better, reference, left_name=left_name, ratio_to=ratio_to, target=target)
        return self.rows[key]

    def record(self, **fields: Any) -> None:
        self.raw.append({k: v for k, v in fields.items() if k != "samples"})


def median_range(values: list[float]) -> tuple[float, float, float] | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_value(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "us":
        return f"{value:,.0f} µs"
    if unit == "x":
        return f"{value:.3f}"
    return f"{value:g}{unit}"


def fmt_figure(values: dict[int, float], unit: str) -> str:
    stats = median_range(list(values.values()))
    if stats is None:
        return "—"
    med, lo, hi = stats
    if len(values) == 1 or lo == hi:
        return fmt_value(med, unit)
    return f"{fmt_value(med, unit)} ({fmt_value(lo, unit)}–{fmt_value(hi, unit)})"


def fmt_ratio(row: Row) -> str:
    ratios = [row.left[r] / row.right[r] for r in row.left if r in row.right and row.right[r]]
    stats = median_range(ratios)
    if stats is None:
        return "—"
    med, lo, hi = stats
    text = f"{med:.2f}" if med >= 0.1 else f"{med:.3f}"
    if row.ratio_to:
        text += f"× {row.ratio_to}"
    if len(ratios) > 1:
        text += f" ({lo:.2f}–{hi:.2f})" if lo >= 0.1 else f" ({lo:.3f}–{hi:.3f})"
    if row.target:
        text += f", target {row.target}"
    return text


def render_table(results: Results) -> str:
    lines = [
        "| cell | ncpaste | reference | ratio ncpaste/ref, median (min–max) | failures (ncpaste / ref) |",
        "|---|---|---|---|---|",
    ]
    for row in results.rows.values():
        arrow = "↑" if row.better == "higher" else "↓"
        cell = f"{row.cell} {arrow}"
        if row.errors and not row.left and not row.right:
            lines.append(f"| {cell} | error: {next(iter(row.errors.values()))} | | | |")
            continue
        if row.skipped_all:
            lines.append(f"| {cell} | skipped: {row.skipped_all} | | | |")
            continue
        left = fmt_figure(row.left, row.unit)
        if row.left_name != "ncpaste":
            left = f"{row.left_name}: {left}"
        if row.skipped:
            right = f"{row.reference}: skipped: {row.skipped}"
        elif row.right:
            right = f"{row.reference}: {fmt_figure(row.right, row.unit)}"
        else:
            right = row.reference or "—"
        fails = f"{row.fails_left} / {row.fails_right}" if row.right else f"{row.fails_left}"
        if row.errors:
            fails += f"; error in round {', '.join(str(r + 1) for r in sorted(row.errors))}"
        lines.append(f"| {cell} | {left} | {right} | {fmt_ratio(row)} | {fails} |")
    return "\n".join(lines)


def print_report(header: list[str], table: str, skip: dict[str, str], errors: list[str]) -> None:
    """The header, the table, then the notes, what was skipped and what failed."""
    print("\n".join(header))
    print()
    print(table)
    print()
    for note in NOTES:
        print(f"- {note}")
    for what, why in sorted(set(skip.items())):
        print(f"- skipped: {what}: {why}")
    for error in errors:
        print(f"- error: {error}")


def write_json(path: Path, header: list[str], table: str, options: dict[str, Any], skip: dict[str, str],
               results: Results) -> None:
    """Every raw figure of the run, with the rows as the table shows them."""
    path.write_text(json.dumps({
        "header": header, "table": table,
        "options": {k: (sorted(v) if isinstance(v, set) else v) for k, v in options.items()},
        "skipped": dict(skip), "errors": results.errors,
        "rows": {key: {"cell": row.cell, "unit": row.unit, "better": row.better, "reference": row.reference,
                       "left_name": row.left_name, "ratio_to": row.ratio_to, "target": row.target,
                       "ncpaste": row.left, "ref": row.right,
                       "failures_ncpaste": row.fails_left, "failures_ref": row.fails_right,
                       "skipped": row.skipped, "skipped_all": row.skipped_all, "errors": row.errors}
                 for key, row in results.rows.items()},
        "raw": results.raw,
    }, indent=1, default=str))


# ---------------------------------------------------------------------------
# The machine and the tools, for the header
# ---------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    return os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE / 2**30


def tool_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0] if text else "?"


def deb_version(package: str) -> str:
    if not shutil.which(package):
        return "not on PATH"
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "not installed"


def package_version(python: str | None, dist: str) -> str:
    """The version of ``dist`` installed for ``python``."""
    if not python:
        return "not installed"
    proc = subprocess.run([python, "-c", "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))", dist],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def git_describe(repo: Path) -> str:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "src"], capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout.strip() else "")
