"""Side-by-side benchmark: ncpaste against fiche, nginx, pinnwand, hypercorn and a
trio + h11 ceiling, on loopback.

    .venv/bin/python bench/bench.py             # every figure: 5 rounds, about 11 minutes on 2 cores
    .venv/bin/python bench/bench.py --quick     # about a minute; CI runs this to keep it working
    .venv/bin/python bench/bench.py --install   # apt/pip install the references first
    .venv/bin/python bench/bench.py --json out.json --rounds 3 --only ingest,get

One command starts ncpaste and the references in the same run, on 127.0.0.1
only, drives them with the same clients, and prints a markdown table of
absolute figures and ratios. A ratio is always ncpaste / reference and is
taken inside each round (both sides measured back to back, the order
alternating between rounds), so a machine that is busier in one round than
in another moves both sides of that round's ratio alike; the table shows the
median over the rounds with min-max.

The references:

* fiche (Debian's package, the C server behind termbin) for netcat ingest:
  one thread per connection, one recv() into a buffer of -B bytes, a file per
  paste, and no fsync. ncpaste answers only after an fsync'd LMDB commit.
* nginx (Debian) serving static files of exactly the same bytes as the
  pastes, with a generated config (worker_processes auto, access_log off,
  keep-alive, sendfile, gzip off; gzip_static and a precompressed .zst file
  for the Accept-Encoding cells).
* pinnwand (PyPI, in its own venv, bench/.venv-pinnwand) for HTTP creates and
  reads, with its rate limits raised, on a temp SQLite file.
* The ceiling for a read on ncpaste's own stack (bench/ceiling_h11.py): bare
  trio + h11 in one process, answering every request with the paste's bytes
  and ncpaste's headers; no store, routing, timeouts or logging.
* hypercorn with its trio worker (PyPI, in its own venv, bench/.venv-hypercorn;
  1 worker, no access log) serving the same from a minimal ASGI app
  (bench/hypercorn_app.py): the best-known server on the same stack.

The plain GET cells (issue #14) also run a second ncpaste with --workers 2
against the same nginx, and give each server's p99 ÷ p50. The cache-front
cell runs deploy/nginx.conf itself (rendered for loopback as
tests/test_load_balancer.py does, one nginx worker) in front of one ncpaste
that trusts it for the PROXY header, and reads a hot paste through its
micro-cache against nginx serving the same bytes as a static file.

The clients: a netcat-style raw TCP client (send, half-close, read the URL
line) and an HTTP create client, both asyncio in several processes so that
the client is not one Python process at 100 %; wrk for GETs. Every 20th
returned URL is fetched back and compared byte for byte; a wrong or missing
paste is a failure, never a success. On 2 cores the clients and the server
share the CPU: that holds for every server alike, and the table also shows
the server's own CPU time per paste.

Every ncpaste process of a run (servers, the bulk loader, `ncpaste sweep`)
runs a copy of src/ taken when the run starts (``--no-snapshot`` to run the
tree as it is at each start), so an edit made during a ten-minute run cannot
mix two versions of the server in one table.

Every process started here (servers in their own process groups, client
processes, wrk) is ended on exit, on Ctrl-C and on an exception. fiche has no
listen-address flag and binds every address; all traffic still goes to
127.0.0.1.
``--quick`` exits 1 when any ncpaste cell failed or a cell could not run; it
never asserts on a timing.

This file holds the options, the cells and ``main``; the servers and the
process registry are in bench_servers.py, the clients, wrk and the bulk
loader in bench_clients.py, the rows, the table and the machine facts in
bench_report.py. The registry and the HTTP connections are made in ``main``
and passed to whatever starts a process or fetches a URL.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_clients import (
    BULK_BATCH,
    DEFAULT_CLIENT_PROCS,
    ClientSpec,
    HttpConns,
    bodies_for,
    bulk_bodies,
    bulk_load,
    bulk_load_main,
    ci_log,
    decode_body,
    exchange_once,
    parse_reply,
    parse_wrk,
    read_keys,
    response_head,
    run_clients,
    run_wrk,
    verify_samples,
    wrk_cmd,
    wrk_script,
)
from bench_report import (
    Results,
    Row,
    cpu_model,
    deb_version,
    git_describe,
    memory_gib,
    package_version,
    print_report,
    render_table,
    write_json,
)
from bench_servers import (
    BENCH_DIR,
    HOST,
    REPO,
    CacheFront,
    CeilingH11,
    CeilingNc,
    Fiche,
    Hypercorn,
    KiB,
    MiB,
    Ncpaste,
    Nginx,
    Pinnwand,
    ProcessRegistry,
    StreamModuleMissing,
    du,
    free_port,
    install,
)

PINNWAND_VENV = BENCH_DIR / ".venv-pinnwand"
HYPERCORN_VENV = BENCH_DIR / ".venv-hypercorn"
# The run's clock: every progress line says how long since the start.
T0 = time.monotonic()


class Skipped(Exception):
    """A cell that cannot run here (a tool is missing): reported, not an error."""


@dataclass
class Options:
    quick: bool
    rounds: int
    ingest_s: float
    wrk_s: int
    client_procs: int
    growth_small: int
    growth_large: int
    sweep_count: int
    sweep_live: int
    rss_clients: int
    disk_bytes: int
    python: str
    pinnwand_python: str | None
    pinnwand_venv: Path
    hypercorn_python: str | None
    hypercorn_venv: Path
    ncpaste_args: list[str]
    workers_args: list[str]
    workers_note: str
    has_workers_flag: bool
    only: set[str]
    keep_tmp: bool
    env: dict[str, str]
    snapshot_note: str


# ---------------------------------------------------------------------------
# The run: what every cell shares
# ---------------------------------------------------------------------------


class Bench:
    """What the cells of one run share: the options, the temp dir, the
    process registry and HTTP connections, the servers started once for the
    whole run, the results, and how a cell reports progress and fails."""

    def __init__(self, opts: Options, tmp: Path, registry: ProcessRegistry, conns: HttpConns) -> None:
        self.opts = opts
        self.tmp = tmp
        self.registry = registry
        self.conns = conns
        self.results = Results()
        self.skip: dict[str, str] = {}
        self.main: Ncpaste | None = None
        self.fiche_small: Fiche | None = None
        self.fiche_large: Fiche | None = None
        self.nc_ceiling: CeilingNc | None = None
        self.nginx: Nginx | None = None
        self.pinnwand: Pinnwand | None = None

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - T0:6.1f}s] {text}", file=sys.stderr, flush=True)

    def want(self, group: str) -> bool:
        return not self.opts.only or group in self.opts.only

    def guarded(self, what: str, fn: Callable[[], None], rows: Iterable[str] = (), rnd: int = 0) -> None:
        """Run one cell; an exception marks its rows as errors instead of ending the run."""
        try:
            fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Skipped as why:
            self.say(f"skipped: {what}: {why}")
            for key in rows:
                if key in self.results.rows:
                    self.results.rows[key].skipped_all = str(why)
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
            self.results.errors.append(f"{what} (round {rnd + 1}): {message}")
            self.say(f"ERROR in {what}: {message}")
            traceback.print_exc(file=sys.stderr)
            for key in rows:
                if key in self.results.rows:
                    self.results.rows[key].errors.setdefault(rnd, message)

    # -- servers -------------------------------------------------------------

    def ncpaste(self, data_dir: Path, label: str = "ncpaste", *, workers_args: list[str] | None = None,
                extra: Sequence[str] = ()) -> Ncpaste:
        """An ncpaste server (not started yet) run with this run's python, flags and environment;
        ``workers_args`` instead of the run's --workers, ``extra`` after every other flag."""
        opts = self.opts
        workers = opts.workers_args if workers_args is None else workers_args
        return Ncpaste(self.tmp, data_dir, self.registry, self.conns, python=opts.python,
                       extra_args=workers + opts.ncpaste_args + list(extra), env=opts.env, label=label)

    def fiche(self, buffer_bytes: int) -> Fiche:
        return Fiche(self.tmp, self.registry, self.conns, buffer_bytes)

    def pinnwand_server(self, label: str = "pinnwand") -> Pinnwand:
        assert self.opts.pinnwand_python is not None
        return Pinnwand(self.tmp, self.registry, self.conns, self.opts.pinnwand_python, label=label)

    def start_servers(self) -> None:
        opts = self.opts
        self.main = self.ncpaste(self.tmp / "ncpaste-main")
        self.main.start()
        self.say(f"ncpaste on tcp {self.main.tcp}, http {self.main.http}")
        if shutil.which("fiche"):
            self.fiche_small = self.fiche(32 * KiB)
            self.fiche_large = self.fiche(2 * MiB)
            self.fiche_small.start()
            self.fiche_large.start()
        else:
            self.skip["fiche"] = "fiche not installed (apt-get install fiche, or --install)"
        self.nc_ceiling = CeilingNc(self.tmp, self.registry, self.conns, opts.python)
        self.nc_ceiling.start()
        if shutil.which("nginx"):
            self.nginx = Nginx(self.tmp, self.registry, self.conns)
            self.nginx.start()
        else:
            self.skip["nginx"] = "nginx not installed (apt-get install nginx, or --install)"
        if not shutil.which("wrk"):
            self.skip["wrk"] = "wrk not installed (apt-get install wrk, or --install)"
        if opts.pinnwand_python:
            try:
                self.pinnwand = self.pinnwand_server()
                self.pinnwand.start()
            except Exception as exc:
                self.pinnwand = None
                self.skip["pinnwand"] = f"pinnwand did not start: {str(exc).splitlines()[0][:120]}"
        else:
            self.skip["pinnwand"] = f"pinnwand not installed in {opts.pinnwand_venv} (--install)"
        for what, why in self.skip.items():
            self.say(f"skipped: {what}: {why}")


class Cells:
    """One measured scenario of a run: its rows, and a round (or a single
    run) that fills them."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.opts = bench.opts
        self.tmp = bench.tmp
        self.results = bench.results
        self.skip = bench.skip
        self.conns = bench.conns
        self.say = bench.say


# ---------------------------------------------------------------------------
# Ingest: netcat against fiche, HTTP create against pinnwand
# ---------------------------------------------------------------------------


class IngestCells(Cells):
    # key, label, body size, concurrency, op
    CELLS = (
        ("nc1k1", "nc ingest 1 KiB ×1", KiB, 1, "nc"),
        ("nc1k32", "nc ingest 1 KiB ×32", KiB, 32, "nc"),
        ("nc1m4", "nc ingest 1 MiB ×4", MiB, 4, "nc"),
        ("http1k32", "HTTP create 1 KiB ×32", KiB, 32, "http"),
    )

    def round(self, rnd: int) -> None:
        for key, label, size, conc, op in self.CELLS:
            self.cell(rnd, key, label, size, conc, op)

    def cell(self, rnd: int, key: str, label: str, size: int, conc: int, op: str) -> None:
        bench = self.bench
        bodies = bodies_for(size, 16 if size <= 64 * KiB else 8, seed=rnd + 1)
        if op == "nc":
            ref_name = "fiche"
            ref_server = bench.fiche_small if size <= 32 * KiB else bench.fiche_large
            ref_label = f"fiche -B {ref_server.buffer_bytes}" if ref_server else "fiche"
        else:
            ref_name, ref_server, ref_label = "pinnwand", bench.pinnwand, "pinnwand /curl"
        refs = [(ref_name, ref_server, key, ref_label)]
        if op == "nc":
            refs.append(("ceiling", bench.nc_ceiling, f"{key}.ceiling", "ceiling (trio)"))
        # Each reference has its rows; ncpaste's figures fill the left side of all of them.
        rows: dict[str, list] = {}
        for name, server, prefix, ref_text in refs:
            rows[name] = [self.results.row(f"{prefix}.rate", f"{label}, pastes/s", "/s", "higher", ref_text),
                          self.results.row(f"{prefix}.p50", f"{label}, p50 connect to URL", "ms", "lower", ref_text),
                          self.results.row(f"{prefix}.p99", f"{label}, p99 connect to URL", "ms", "lower", ref_text),
                          self.results.row(f"{prefix}.cpu", f"{label}, server CPU per paste", "us", "lower", ref_text)]
            if server is None:
                for row in rows[name]:
                    row.skipped = self.skip.get(name, "not available")
        sides: list[tuple[str, Any]] = [("ncpaste", bench.main)]
        sides += [(name, server) for name, server, _, _ in refs if server is not None]
        if rnd % 2:
            sides.reverse()

        def run() -> None:
            for side, server in sides:
                spec, reader = self.client_for(side, server, op, bodies)
                cpu0 = server.cpu()
                result = run_clients(spec, conc, procs=self.opts.client_procs, registry=bench.registry,
                                     duration_s=self.opts.ingest_s)
                cpu = server.cpu() - cpu0
                if reader is None:
                    result.pop("samples")
                else:
                    verify_samples(result, bodies, reader)
                result["cpu_us_per_paste"] = cpu / max(1, result["ok"]) * 1e6
                result["rate"] = result["ok"] / result["elapsed_s"]
                self.results.record(cell=key, server=side, round=rnd, **result)
                self.say(f"  {label:<24} {side:<9} {result['rate']:>9,.0f}/s  p99 {result['p99_ms'] or 0:7.2f} ms  "
                         f"cpu {result['cpu_us_per_paste']:6.0f} µs/paste  client cpu {result['client_cpu_pct']:3.0f}%  "
                         f"ok {result['ok']} failed {result['failed']}"
                         + (f"  {result['errors']}" if result["errors"] else ""))
                values = (result["rate"], result["p50_ms"], result["p99_ms"], result["cpu_us_per_paste"])
                for name, cell_rows in rows.items():
                    if side not in ("ncpaste", name):
                        continue
                    left = side == "ncpaste"
                    for row, value in zip(cell_rows, values):
                        (row.left if left else row.right)[rnd] = value
                        if left:
                            row.fails_left += result["failed"]
                        else:
                            row.fails_right += result["failed"]

        keys = [f"{prefix}.{what}" for _, _, prefix, _ in refs for what in ("rate", "p50", "p99", "cpu")]
        bench.guarded(label, run, keys, rnd=rnd)

    def client_for(self, side: str, server: Any, op: str,
                   bodies: list[bytes]) -> tuple[ClientSpec, Callable[[str], bytes] | None]:
        """The client that creates pastes on ``server``, and how to read one
        back (None: the ceiling keeps nothing to read)."""
        if side == "ncpaste":
            port = server.tcp if op == "nc" else server.http
            return ClientSpec("nc" if op == "nc" else "http-ncpaste", port, bodies), self.conns.read
        if side == "fiche":
            return ClientSpec("nc", server.port, bodies), server.read
        if side == "ceiling":
            return ClientSpec("nc", server.port, bodies), None
        return ClientSpec("http-pinnwand", server.port, bodies), self.conns.read


# ---------------------------------------------------------------------------
# GET: the same bytes from ncpaste and its references, under wrk
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """How the table names one server of the GET cells."""

    label: str  # in a figure column: "ceiling (trio + h11)"
    short: str  # in the ratio column: "0.74× ceiling"


class GetCells(Cells):
    """GET 1 KiB and 100 KiB ×64 under wrk: ncpaste, its references and a
    second ncpaste with --workers 2 on the same bytes, back to back in each
    round; with an Accept-Encoding, ncpaste and nginx only."""

    CELLS = (("1k", "GET 1 KiB ×64"), ("100k", "GET 100 KiB ×64"))
    SIDES = {
        "ncpaste": Side("ncpaste", "ncpaste"),
        "ceiling": Side("ceiling (trio + h11)", "ceiling"),
        "hypercorn": Side("hypercorn -k trio", "hypercorn"),
        "ncpaste-w2": Side("ncpaste --workers 2", "ncpaste --workers 2"),
        "nginx": Side("nginx", "nginx"),
        "pinnwand": Side("pinnwand", "pinnwand"),
    }
    # The order of a round (reversed every other round): ncpaste next to the
    # ceiling and hypercorn, whose ratios issue #14 sets targets for.
    PLAIN_ORDER = ("ncpaste", "ceiling", "hypercorn", "ncpaste-w2", "nginx", "pinnwand")
    CODED_ORDER = ("ncpaste", "nginx")
    # (left, reference, issue #14's target for the req/s ratio): a req/s row and a p99 row each.
    PLAIN_PAIRS = (("ncpaste", "nginx", ""), ("ncpaste", "pinnwand", ""), ("ncpaste", "ceiling", "≥ 0.85"),
                   ("ncpaste", "hypercorn", "≥ 3.5"), ("ncpaste-w2", "nginx", ""))
    CODED_PAIRS = (("ncpaste", "nginx", ""),)
    # A p99 ÷ p50 row for each of these (plain GETs); the target is ncpaste's.
    SPREAD = ("ncpaste", "ceiling", "hypercorn", "nginx")
    SPREAD_TARGET = "≤ 3"

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        self.urls: dict[str, str] = {}
        self.bodies: dict[str, bytes] = {}
        self.served: dict[str, str] = {}

    def prepare(self) -> None:
        """The same bytes on every server: a paste on ncpaste and pinnwand,
        a static file on nginx (and its gzip/zstd forms as ncpaste sends them),
        the constant body of the ceiling and of hypercorn; then the servers
        only the GET cells use."""
        main, nginx, pinnwand = self.bench.main, self.bench.nginx, self.bench.pinnwand
        assert main is not None
        for size, name in ((KiB, "1k"), (100 * KiB, "100k")):
            body = bodies_for(size, 1, seed=99)[0]
            spec = ClientSpec("nc", main.tcp, [body])
            url = parse_reply("nc", asyncio.run(exchange_once(spec)))
            self.urls[f"ncpaste.{name}"] = url
            self.bodies[name] = body
            (self.tmp / f"body-{name}.txt").write_bytes(body)
            if self.conns.read(url) != body:
                raise RuntimeError(f"ncpaste GET {url} does not give back the pasted bytes")
            encoded: dict[str, bytes] = {}
            for coding in ("zstd", "gzip"):
                status, headers, got = self.conns.get(url, {"Accept-Encoding": coding})
                served = headers.get("content-encoding", "identity")
                self.served[f"{name}.{coding}"] = served
                if status != 200 or decode_body(headers, got) != body:
                    raise RuntimeError(f"ncpaste GET {url} with Accept-Encoding: {coding} gave wrong bytes")
                encoded[coding] = got if served == coding else (
                    gzip.compress(body, 6, mtime=0) if coding == "gzip" else _zstd(body))
            if nginx:
                self.urls[f"nginx.{name}"] = nginx.put(f"p{name}.txt", body)
                nginx.put(f"gz/p{name}.txt", body)
                nginx.put(f"gz/p{name}.txt.gz", encoded["gzip"])
                self.urls[f"nginx.{name}.gzip"] = f"{nginx.url}/gz/p{name}.txt"
                self.urls[f"nginx.{name}.zstd"] = nginx.put(f"zst/p{name}.txt", encoded["zstd"])
                for variant, header in (("", None), (".gzip", "gzip"), (".zstd", "zstd")):
                    status, headers, got = self.conns.get(self.urls[f"nginx.{name}{variant}"],
                                                          {"Accept-Encoding": header} if header else None)
                    if status != 200 or decode_body(headers, got) != body:
                        raise RuntimeError(f"nginx {name}{variant} does not serve the same bytes")
            if pinnwand:
                spec = ClientSpec("http-pinnwand", pinnwand.port, [body])
                url = parse_reply("http-pinnwand", asyncio.run(exchange_once(spec)))
                if self.conns.read(url) != body:
                    raise RuntimeError(f"pinnwand {url} does not give back the pasted bytes")
                self.urls[f"pinnwand.{name}"] = url
        bench, opts = self.bench, self.opts
        bench.guarded("GET set-up: ceiling", lambda: self.start_constant("ceiling", self.ceiling))
        if opts.hypercorn_python:
            bench.guarded("GET set-up: hypercorn", lambda: self.start_constant("hypercorn", self.hypercorn))
        else:
            self.skip["hypercorn"] = f"hypercorn not installed in {opts.hypercorn_venv} (--install)"
        bench.guarded("GET set-up: ncpaste --workers 2", self.start_workers2)
        self.log_heads()

    def ceiling(self, body_file: Path, label: str) -> CeilingH11:
        return CeilingH11(self.tmp, self.bench.registry, self.conns, self.opts.python, body_file, label)

    def hypercorn(self, body_file: Path, label: str) -> Hypercorn:
        return Hypercorn(self.tmp, self.bench.registry, self.conns, self.opts.hypercorn_venv, body_file, label)

    def start_constant(self, side: str, make: Callable[[Path, str], CeilingH11 | Hypercorn]) -> None:
        """One server of ``side`` per body size, each checked to give back the bytes."""
        for name, body in self.bodies.items():
            server = make(self.tmp / f"body-{name}.txt", f"{side}-{name}")
            self.start_or_mark(side, server.start)
            url = f"{server.url}/p{name}.txt"  # any path: the body is the same
            if self.conns.read(url) != body:
                raise RuntimeError(f"{side} {url} does not give back the body it was started with")
            self.urls[f"{side}.{name}"] = url

    def start_workers2(self) -> None:
        """ncpaste --workers 2 on its own data dir, with the same pastes."""
        if not self.opts.has_workers_flag:
            self.skip["ncpaste-w2"] = "this ncpaste has no --workers flag"
            return
        server = self.bench.ncpaste(self.tmp / "ncpaste-w2", label="ncpaste-w2", workers_args=["--workers", "2"])
        self.start_or_mark("ncpaste-w2", server.start)
        for name, body in self.bodies.items():
            url = parse_reply("nc", asyncio.run(exchange_once(ClientSpec("nc", server.tcp, [body]))))
            if self.conns.read(url) != body:
                raise RuntimeError(f"ncpaste --workers 2 GET {url} does not give back the pasted bytes")
            self.urls[f"ncpaste-w2.{name}"] = url

    def start_or_mark(self, side: str, start: Callable[[], Any]) -> None:
        """Start a server; if it does not start, its rows say so and the set-up error is raised."""
        try:
            start()
        except Exception:
            self.skip[side] = "did not start (see the errors below)"
            raise

    def log_heads(self) -> None:
        """The response head each server sends with the 1 KiB body: the ceiling
        and hypercorn send ncpaste's header set, so theirs should weigh about as much."""
        sizes = {side: len(response_head(self.urls[f"{side}.1k"])) for side in self.PLAIN_ORDER
                 if f"{side}.1k" in self.urls}
        self.results.record(cell="get.head_bytes", **sizes)
        self.say("response head with the 1 KiB body: " + ", ".join(f"{side} {n} B" for side, n in sizes.items()))

    def url_of(self, side: str, name: str, coding: str | None) -> str | None:
        if coding and side == "nginx":
            return self.urls.get(f"nginx.{name}.{coding}")
        return self.urls.get(f"{side}.{name}")

    def round(self, rnd: int) -> None:
        if "wrk" in self.skip:
            for name, label in self.CELLS:
                row = self.results.row(f"get{name}.rate", f"{label}, req/s", "/s", "higher", "nginx")
                row.skipped_all = self.skip["wrk"]
            return
        for name, label in self.CELLS:
            for coding in (None, "zstd", "gzip"):
                self.cell(rnd, name, label, coding)

    def rows_for(self, key: str, label: str, coding: str | None) -> dict[str, tuple[str, str, str]]:
        """The rows of one cell, each key with (left side, reference side, metric)."""
        sides, new_row = self.SIDES, self.results.row
        rows: dict[str, tuple[str, str, str]] = {}
        for left, ref, target in (self.PLAIN_PAIRS if coding is None else self.CODED_PAIRS):
            prefix = f"{key}.{ref}" if left == "ncpaste" else f"{key}.{left}.{ref}"
            # A row whose left side is not the main ncpaste says so in the cell too (it stays when skipped).
            cell = label if left == "ncpaste" else f"{label}, {sides[left].label.removeprefix('ncpaste ')}"
            new_row(f"{prefix}.rate", f"{cell}, req/s", "/s", "higher", sides[ref].label, sides[left].label,
                    ratio_to=sides[ref].short, target=target)
            new_row(f"{prefix}.p99", f"{cell}, p99 latency", "ms", "lower", sides[ref].label, sides[left].label,
                    ratio_to=sides[ref].short)
            rows[f"{prefix}.rate"], rows[f"{prefix}.p99"] = (left, ref, "rate"), (left, ref, "p99_ms")
        for side in () if coding else self.SPREAD:
            new_row(f"{key}.{side}.spread", f"{label}, {sides[side].label} p99 ÷ p50", "ms", "lower", "p50", "p99",
                    ratio_to="p50", target=self.SPREAD_TARGET if side == "ncpaste" else "")
            rows[f"{key}.{side}.spread"] = (side, side, "spread")
        return rows

    def cell(self, rnd: int, name: str, label: str, coding: str | None) -> None:
        """ncpaste and its references on one body and one Accept-Encoding, back to back."""
        secs = self.opts.wrk_s
        body = self.bodies[name]
        suffix = f" (Accept-Encoding: {coding})" if coding else ""
        served = self.served.get(f"{name}.{coding}") if coding else None
        if coding and served != coding:
            suffix += f" [ncpaste served {served}]"
        headers = [f"Accept-Encoding: {coding}"] if coding else []
        key = f"get{name}{'.' + coding if coding else ''}"
        rows = self.rows_for(key, label + suffix, coding)

        def run() -> None:
            measured: dict[str, dict] = {}
            order = [side for side in (self.CODED_ORDER if coding else self.PLAIN_ORDER) if self.url_of(side, name, coding)]
            if rnd % 2:
                order.reverse()
            for side in order:
                url = self.url_of(side, name, coding)
                assert url is not None
                result = run_wrk(url, secs, headers=headers)
                status, resp_headers, got = self.conns.get(url, {"Accept-Encoding": coding} if coding else None)
                if status != 200 or decode_body(resp_headers, got) != body:
                    result["failed"] += 1
                    result["errors"]["wrong bytes after the run"] = 1
                measured[side] = result
                self.results.record(cell=key, server=side, round=rnd, url=url, **result)
                self.say(f"  {label + suffix:<48} {side:<10} {result['rate']:>9,.0f}/s  "
                         f"p50 {result.get('p50_ms', 0):6.2f} ms  p99 {result.get('p99_ms', 0):7.2f} ms"
                         + (f"  errors {result['errors']}" if result["errors"] else ""))
            for row_key, (left, ref, metric) in rows.items():
                self.fill(self.results.rows[row_key], rnd, left, ref, metric, measured)

        self.bench.guarded(label + suffix, run, list(rows), rnd=rnd)

    def fill(self, row: Row, rnd: int, left: str, ref: str, metric: str, measured: dict[str, dict]) -> None:
        """One round of one row. The left side's failures count as ncpaste's
        only when the left side is an ncpaste (a reference's p99 ÷ p50 row
        keeps them on the reference side)."""
        if left not in measured:
            row.skipped_all = self.skip.get(left, "not available")
            return
        if metric == "spread":
            row.left[rnd], row.right[rnd] = measured[left].get("p99_ms", math.nan), measured[left].get("p50_ms", math.nan)
            if left.startswith("ncpaste"):
                row.fails_left += measured[left]["failed"]
            else:
                row.fails_right += measured[left]["failed"]
            return
        row.left[rnd] = measured[left][metric]
        row.fails_left += measured[left]["failed"]
        if ref in measured:
            row.right[rnd] = measured[ref][metric]
            row.fails_right += measured[ref]["failed"]
        else:
            row.skipped = self.skip.get(ref, "not available")


# ---------------------------------------------------------------------------
# The cache front: a hot paste through deploy/nginx.conf, against nginx static
# ---------------------------------------------------------------------------


class FrontCells(Cells):
    """GET 1 KiB ×64 of one hot paste through the shipped nginx.conf (its read
    micro-cache warm) in front of one ncpaste, and nginx serving the same
    bytes as a static file, in the same round."""

    LABEL = "GET 1 KiB ×64, hot paste through deploy/nginx.conf"

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        self.front: CacheFront | None = None
        self.path = ""
        self.static_url = ""
        self.body = bodies_for(KiB, 1, seed=99)[0]

    def prepare(self) -> None:
        """The node, the front before it, one paste in through the front's
        netcat port (a PROXY header towards the node), and the same bytes on nginx."""
        bench = self.bench
        if bench.nginx is None:
            self.skip["front"] = self.skip.get("nginx", "nginx did not start")
            raise Skipped(self.skip["front"])
        front = CacheFront(self.tmp, bench.registry, self.conns)
        live_port = free_port()
        # The front connects from 127.0.0.1; the node hands out the front's URLs.
        node = bench.ncpaste(self.tmp / "ncpaste-front", label="ncpaste-front",
                             extra=["--trusted-proxy", f"{HOST}/32", "--url", front.url, "--live", f"{HOST}:{live_port}"])
        node.start()
        try:
            front.start({"tcp": node.tcp, "live": live_port, "http": node.http})
        except StreamModuleMissing as why:
            self.skip["front"] = str(why)
            raise Skipped(str(why)) from None
        url = parse_reply("nc", asyncio.run(exchange_once(ClientSpec("nc", front.ports["tcp"], [self.body]))))
        if not url.startswith(front.url + "/"):
            raise RuntimeError(f"the node behind the front handed out {url}, not a URL on the front ({front.url})")
        self.path = urllib.parse.urlsplit(url).path
        self.static_url = bench.nginx.put("front/p1k.txt", self.body)
        self.front = front
        self.warm()

    def warm(self) -> str:
        """Two GETs as wrk sends them: the second must come from the cache
        (X-Cache-Status: HIT) with the paste's bytes, else the cell fails."""
        assert self.front is not None
        statuses = []
        for _ in range(2):
            status, headers, got = self.front.get(self.path)
            if status != 200 or got != self.body:
                raise RuntimeError(f"GET {self.path} through the front: {status}, {len(got)} bytes, not the paste")
            statuses.append(headers.get("x-cache-status", "(no X-Cache-Status)"))
        if statuses[1] != "HIT":
            raise RuntimeError(f"the front's cache did not keep the paste: X-Cache-Status {statuses[0]}, then "
                               f"{statuses[1]} (want HIT)")
        return statuses[1]

    def round(self, rnd: int) -> None:
        new_row = self.results.row
        rows = {"rate": new_row("front.rate", f"{self.LABEL}, req/s", "/s", "higher", "nginx static", "cache front",
                            ratio_to="nginx static", target="≥ 0.5"),
                "p99_ms": new_row("front.p99", f"{self.LABEL}, p99 latency", "ms", "lower", "nginx static", "cache front",
                              ratio_to="nginx static", target="≤ 2")}

        def run() -> None:
            if self.front is None:
                raise Skipped(self.skip.get("front", "the cache front did not start (see the errors below)"))
            if "wrk" in self.skip:
                raise Skipped(self.skip["wrk"])
            order = [("front", self.front.url + self.path), ("nginx", self.static_url)]
            if rnd % 2:
                order.reverse()
            measured: dict[str, dict] = {}
            for side, url in order:
                cache = self.warm() if side == "front" else ""
                result = run_wrk(url, self.opts.wrk_s)
                if side == "front":
                    status, headers, got = self.front.get(self.path)
                    cache += f", after the run {headers.get('x-cache-status', '(none)')}"
                else:
                    status, headers, got = self.conns.get(url)
                if status != 200 or got != self.body:
                    result["failed"] += 1
                    result["errors"]["wrong bytes after the run"] = 1
                measured[side] = result
                self.results.record(cell="front", server=side, round=rnd, url=url, cache=cache, **result)
                self.say(f"  {self.LABEL:<48} {side:<10} {result['rate']:>9,.0f}/s  "
                         f"p50 {result.get('p50_ms', 0):6.2f} ms  p99 {result.get('p99_ms', 0):7.2f} ms"
                         + (f"  X-Cache-Status {cache}" if cache else "")
                         + (f"  errors {result['errors']}" if result["errors"] else ""))
            for metric, row in rows.items():
                row.left[rnd] = measured["front"][metric]
                row.fails_left += measured["front"]["failed"]
                row.right[rnd] = measured["nginx"][metric]
                row.fails_right += measured["nginx"]["failed"]

        self.bench.guarded(self.LABEL, run, ["front.rate", "front.p99"], rnd=rnd)


# ---------------------------------------------------------------------------
# Growth: a small and a large store, bulk-loaded once, on the same server
# ---------------------------------------------------------------------------


class GrowthCells(Cells):
    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        self.stores: dict[str, dict] = {}

    def prepare(self) -> None:
        self.stores = {}
        for label, count in (("small", self.opts.growth_small), ("large", self.opts.growth_large)):
            data = self.tmp / f"growth-{label}"
            keys_file = self.tmp / f"growth-{label}.keys"
            info = bulk_load(self.bench.registry, data, count, 30 * 86400, keys_file, seed=7,
                             python=self.opts.python, env=self.opts.env)
            keys = read_keys(keys_file)
            script = wrk_script(self.tmp, f"growth-{label}", [f"/{k}" for k, _ in keys])
            self.stores[label] = {"count": count, "dir": data, "keys": keys, "script": script, "load": info}
            self.say(f"bulk-loaded {count:,} pastes in {info['seconds']:.1f} s "
                     f"({count / info['seconds']:,.0f}/s, create_batch ×{BULK_BATCH:,})")
            self.results.record(cell="growth.bulkload", server="ncpaste", store=label, pastes=count, seconds=info["seconds"])

    def round(self, rnd: int) -> None:
        small, large = self.stores["small"], self.stores["large"]
        label = f"{large['count']:,} vs {small['count']:,} stored"
        ref = f"{small['count']:,} stored"
        left = f"{large['count']:,} stored"
        new_row = self.results.row
        rows = {
            "accepts_s": new_row("growth.accepts", f"start-up until the port accepts, {label}", "s", "lower", ref, left),
            "healthz_s": new_row("growth.healthz", f"start-up until /healthz answers, {label}", "s", "lower", ref, left),
            "rate": new_row("growth.rate", f"GET 1 KiB random key ×64, {label}, req/s", "/s", "higher", ref, left),
            "p50_ms": new_row("growth.p50", f"GET 1 KiB random key ×64, {label}, p50", "ms", "lower", ref, left),
            "p99_ms": new_row("growth.p99", f"GET 1 KiB random key ×64, {label}, p99", "ms", "lower", ref, left),
        }

        bodies = bulk_bodies(7)

        def run() -> None:
            if "wrk" in self.skip:
                raise Skipped(self.skip["wrk"])
            order = ["small", "large"] if rnd % 2 == 0 else ["large", "small"]
            for which in order:
                result = self.measure(rnd, which, bodies)
                for metric, row in rows.items():
                    if which == "large":
                        row.left[rnd] = result.get(metric)
                        row.fails_left += result["failed"]
                    else:
                        row.right[rnd] = result.get(metric)
                        row.fails_right += result["failed"]

        self.bench.guarded("growth", run, [f"growth.{m}" for m in ("accepts", "healthz", "rate", "p50", "p99")], rnd=rnd)

    def measure(self, rnd: int, which: str, bodies: list[bytes]) -> dict:
        """Start-up times, 20 keys read back, then wrk over random keys of one store."""
        g = self.stores[which]
        server = self.bench.ncpaste(g["dir"], label=f"ncpaste-growth-{which}")
        try:
            result = server.start()
            wrong = 0
            for k, idx in random.Random(rnd).sample(g["keys"], min(20, len(g["keys"]))):
                try:
                    if self.conns.read(f"{server.url}/{k}") != bodies[idx]:
                        wrong += 1
                except Exception:
                    wrong += 1
            result.update(run_wrk(server.url, self.opts.wrk_s, script=g["script"]))
            result["failed"] += wrong
        finally:
            server.stop()
            self.conns.close()
        self.results.record(cell="growth", server="ncpaste", store=which, count=g["count"], round=rnd, **result)
        self.say(f"  growth {which:<5} {g['count']:>10,} stored: accepts {result['accepts_s'] * 1000:6.0f} ms, "
                 f"/healthz {result['healthz_s'] * 1000:6.0f} ms, {result['rate']:>8,.0f}/s, "
                 f"p50 {result.get('p50_ms', 0):.2f} ms, p99 {result.get('p99_ms', 0):.2f} ms"
                 + (f"  errors {result['errors']}" if result["errors"] else ""))
        return result


# ---------------------------------------------------------------------------
# Memory: a fresh server of each kind, then many 1 MiB uploads at once
# ---------------------------------------------------------------------------


class RssCells(Cells):
    def round(self, rnd: int) -> None:
        n = self.opts.rss_clients
        label = f"{n} clients uploading 1 MiB at once"
        bodies = bodies_for(MiB, 8, seed=50 + rnd)
        refs = []
        if self.opts.pinnwand_python and "pinnwand" not in self.skip:
            refs.append("pinnwand")
        if shutil.which("fiche"):
            refs.append("fiche")
        sides = ["ncpaste"] + refs
        if rnd % 2:
            sides.reverse()
        rows: dict[tuple[str, str], Row] = {}
        for ref in ("pinnwand", "fiche"):
            ref_label = "fiche -B 2097152" if ref == "fiche" else "pinnwand"
            for metric, what in (("idle", "RSS idle (fresh server)"), ("peak", f"RSS peak, {label}"),
                                 ("after", "RSS after the uploads")):
                row = rows[(ref, metric)] = self.results.row(f"rss.{metric}.{ref}", f"{what}, sum over processes",
                                                             "MiB", "lower", ref_label)
                if ref not in refs:
                    row.skipped = self.skip.get(ref, "not available")

        def run() -> None:
            measured: dict[str, dict] = {}
            for side in sides:
                measured[side] = self.measure(rnd, side, bodies)
            for (ref, metric), row in rows.items():
                row.left[rnd] = measured["ncpaste"][metric]
                row.fails_left += measured["ncpaste"]["failed"]
                if ref in measured:
                    row.right[rnd] = measured[ref][metric]
                    row.fails_right += measured[ref]["failed"]

        self.bench.guarded("rss", run, [f"rss.{m}.{r}" for m in ("idle", "peak", "after") for r in ("pinnwand", "fiche")],
                           rnd=rnd)

    def measure(self, rnd: int, side: str, bodies: list[bytes]) -> dict:
        """RSS and PSS of one fresh server: idle, at the peak of the uploads, a second after."""
        n = self.opts.rss_clients
        server: Any
        if side == "ncpaste":
            server = self.bench.ncpaste(self.tmp / f"ncpaste-rss-{rnd}", label=f"ncpaste-rss-{rnd}")
            server.start()
            spec, reader = ClientSpec("nc", server.tcp, bodies, sample_every=1), self.conns.read
        elif side == "fiche":
            server = self.bench.fiche(2 * MiB)
            server.name = f"fiche-rss-{rnd}"
            server.out = self.tmp / f"fiche-rss-{rnd}-out"
            server.start()
            spec, reader = ClientSpec("nc", server.port, bodies, sample_every=1), server.read
        else:
            server = self.bench.pinnwand_server(label=f"pinnwand-rss-{rnd}")
            server.start()
            spec, reader = ClientSpec("http-pinnwand", server.port, bodies, sample_every=1), self.conns.read
        try:
            time.sleep(0.5)
            idle = server.memory()
            peak = list(idle)

            def sample() -> None:
                rss, pss = server.memory()
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

            result = run_clients(spec, n, procs=self.opts.client_procs, registry=self.bench.registry, per_conn=1,
                                 on_tick=sample)
            sample()
            time.sleep(1.0)
            after = server.memory()
            # Every upload of this cell is read back, not only every 20th.
            verify_samples(result, bodies, reader)
        finally:
            server.stop()
            self.conns.close()
        figures = {"idle": idle[0] / MiB, "peak": peak[0] / MiB, "after": after[0] / MiB,
                   "idle_pss": idle[1] / MiB, "peak_pss": peak[1] / MiB, "after_pss": after[1] / MiB}
        self.results.record(cell="rss", server=side, round=rnd, **figures, ok=result["ok"], failed=result["failed"],
                            errors=result["errors"], elapsed_s=result["elapsed_s"])
        self.say(f"  RSS {side:<9} idle {figures['idle']:6.1f} MiB, peak {figures['peak']:7.1f} MiB "
                 f"(PSS {figures['peak_pss']:.1f}), after {figures['after']:6.1f} MiB; {result['ok']} uploads "
                 f"in {result['elapsed_s']:.1f} s, failed {result['failed']}"
                 + (f"  {result['errors']}" if result["errors"] else ""))
        return {**figures, "failed": result["failed"], "ok": result["ok"]}


# ---------------------------------------------------------------------------
# Disk: the same corpus of CI logs into ncpaste and into fiche
# ---------------------------------------------------------------------------


class DiskCell(Cells):
    def run(self) -> None:
        row = self.results.row("disk", "disk used / payload, CI log text", "x", "lower", "fiche -B 2097152")
        row_abs = self.results.row("disk.mib", "disk used for the same pastes", "MiB", "lower", "fiche -B 2097152")

        def run() -> None:
            corpus = self.corpus()
            payload = sum(len(b) for b in corpus)
            disk_n, result = self.ncpaste_side(corpus, payload)
            row.left[0] = disk_n / payload
            row_abs.left[0] = disk_n / MiB
            row.fails_left += result["failed"] + (len(corpus) - result["ok"] - result["failed"])
            row_abs.fails_left = row.fails_left
            self.say(f"  disk ncpaste: {disk_n / MiB:.1f} MiB for {payload / MiB:.1f} MiB ({disk_n / payload:.3f})")
            if not shutil.which("fiche"):
                row.skipped = row_abs.skipped = self.skip.get("fiche", "not available")
                return
            disk_f, result = self.fiche_side(corpus, payload)
            row.right[0] = disk_f / payload
            row_abs.right[0] = disk_f / MiB
            row.fails_right += result["failed"]
            row_abs.fails_right = row.fails_right
            self.say(f"  disk fiche:   {disk_f / MiB:.1f} MiB for {payload / MiB:.1f} MiB ({disk_f / payload:.3f}); "
                     "fiche does not fsync")

        self.bench.guarded("disk", run, ["disk", "disk.mib"])

    def corpus(self) -> list[bytes]:
        rng = random.Random(2026)
        corpus: list[bytes] = []
        total = 0
        while total < self.opts.disk_bytes:
            # Log-uniform sizes from 2 KiB to 1 MiB: many short jobs, a few long ones.
            size = int(math.exp(rng.uniform(math.log(2 * KiB), math.log(MiB))))
            corpus.append(ci_log(size, rng))
            total += size
        self.say(f"disk: {len(corpus)} pastes, {total / MiB:.1f} MiB of log text")
        return corpus

    def ncpaste_side(self, corpus: list[bytes], payload: int) -> tuple[int, dict]:
        data = self.tmp / "ncpaste-disk"
        server = self.bench.ncpaste(data, label="ncpaste-disk")
        server.start()
        try:
            # Each of 4 connections sends a quarter of the corpus; every paste is read back.
            result = run_clients(ClientSpec("nc", server.tcp, corpus, sample_every=1), 4, procs=1,
                                 registry=self.bench.registry, per_conn=math.ceil(len(corpus) / 4), once=True)
            verify_samples(result, corpus, self.conns.read)
        finally:
            server.stop()
            self.conns.close()
        disk_n = du(data)
        stats = subprocess.run([self.opts.python, "-m", "ncpaste", "stats", "--json", "--data-dir", str(data)],
                               capture_output=True, text=True, cwd=REPO, env=self.opts.env)
        self.results.record(cell="disk", server="ncpaste", disk_bytes=disk_n, payload_bytes=payload,
                            pastes=len(corpus), ok=result["ok"], failed=result["failed"],
                            stats=stats.stdout.strip() if stats.returncode == 0 else stats.stderr.strip()[-300:])
        return disk_n, result

    def fiche_side(self, corpus: list[bytes], payload: int) -> tuple[int, dict]:
        fiche = self.bench.fiche(2 * MiB)
        fiche.name, fiche.out = "fiche-disk", self.tmp / "fiche-disk-out"
        fiche.start()
        try:
            result = run_clients(ClientSpec("nc", fiche.port, corpus, sample_every=1), 4, procs=1,
                                 registry=self.bench.registry, per_conn=math.ceil(len(corpus) / 4), once=True)
            verify_samples(result, corpus, fiche.read)
        finally:
            fiche.stop()
        disk_f = du(fiche.out)
        self.results.record(cell="disk", server="fiche", disk_bytes=disk_f, payload_bytes=payload,
                            pastes=len(corpus), ok=result["ok"], failed=result["failed"])
        return disk_f, result


# ---------------------------------------------------------------------------
# Sweep: `ncpaste sweep` of many expired pastes beside a server under wrk
# ---------------------------------------------------------------------------


class SweepCells(Cells):
    def round(self, rnd: int) -> None:
        n = self.opts.sweep_count
        during_vs_before = "GET 1 KiB random key ×64 during the sweep vs before"
        rows = {
            "sweep_s": self.results.row(
                "sweep.time", f"sweep of {n:,} expired pastes: wall time of `ncpaste sweep` beside the running server",
                "s", "lower", ""),
            "rate": self.results.row("sweep.rate", f"{during_vs_before}, req/s", "/s", "higher", "before the sweep", "during"),
            "p99_ms": self.results.row("sweep.p99", f"{during_vs_before}, p99", "ms", "lower", "before the sweep", "during"),
        }

        def run() -> None:
            if "wrk" in self.skip:
                raise Skipped(self.skip["wrk"])
            sweep, sweep_s, before, during, load = self.measure(rnd, n)
            removed = re.findall(r"\d[\d,]*", sweep.stdout)
            removed_n = int(removed[0].replace(",", "")) if removed else -1
            failed = 0 if (sweep.returncode == 0 and removed_n == n) else 1
            self.results.record(cell="sweep", server="ncpaste", round=rnd, sweep_s=sweep_s, removed=removed_n,
                                sweep_stdout=sweep.stdout[-300:], sweep_stderr=sweep.stderr[-300:],
                                before=before, during=during, load=load)
            self.say(f"  sweep: {removed_n:,} removed in {sweep_s:.2f} s; GET before {before['rate']:,.0f}/s "
                     f"p99 {before.get('p99_ms', 0):.2f} ms, during {during['rate']:,.0f}/s p99 {during.get('p99_ms', 0):.2f} ms"
                     + ("" if not failed else
                        f"  FAILED: exit {sweep.returncode}, stdout {sweep.stdout[-200:]!r} {sweep.stderr[-200:]!r}"))
            rows["sweep_s"].left[rnd] = sweep_s
            rows["sweep_s"].fails_left += failed
            for metric in ("rate", "p99_ms"):
                rows[metric].left[rnd] = during.get(metric)
                rows[metric].right[rnd] = before.get(metric)
                rows[metric].fails_left += during["failed"] + failed
                rows[metric].fails_right += before["failed"]

        self.bench.guarded("sweep", run, ["sweep.time", "sweep.rate", "sweep.p99"], rnd=rnd)

    def measure(self, rnd: int, n: int) -> tuple[subprocess.CompletedProcess, float, dict, dict, dict]:
        """Live pastes and ``n`` expired ones in one store; wrk before, then
        wrk while `ncpaste sweep` removes the expired ones."""
        registry, opts = self.bench.registry, self.opts
        data = self.tmp / f"ncpaste-sweep-{rnd}"
        keys_file = self.tmp / f"sweep-{rnd}.keys"
        bulk_load(registry, data, opts.sweep_live, 30 * 86400, keys_file, seed=11, python=opts.python, env=opts.env)
        script = wrk_script(self.tmp, f"sweep-{rnd}", [f"/{k}" for k, _ in read_keys(keys_file)])
        server = self.bench.ncpaste(data, label=f"ncpaste-sweep-{rnd}")
        server.start()  # its own first sweep runs now, before the expired pastes exist
        started = time.monotonic()
        try:
            load = bulk_load(registry, data, n, 1, self.tmp / f"sweep-{rnd}-expired.keys", seed=12,
                             python=opts.python, env=opts.env)
            time.sleep(2.0)  # expire_s=1 on the wall clock: all of them are past it now
            before = run_wrk(server.url, opts.wrk_s, script=script)
            wrk_log = self.tmp / f"sweep-{rnd}-wrk.log"
            wrk = registry.start(wrk_cmd(server.url, 120, script=script), wrk_log)
            try:
                time.sleep(0.5)
                t0 = time.monotonic()
                sweep = subprocess.run([opts.python, "-m", "ncpaste", "sweep", "-q", "--data-dir", str(data)],
                                       capture_output=True, text=True, cwd=REPO, env=opts.env,
                                       timeout=600)
                sweep_s = time.monotonic() - t0
                os.kill(wrk.pid, signal.SIGINT)  # wrk prints its figures on SIGINT
                wrk.wait(30)
            finally:
                registry.stop(wrk)
            during = parse_wrk(wrk_log.read_text())
            if time.monotonic() - started > 55:
                self.say("  warning: over 55 s since server start: its own minute sweep may have run")
        finally:
            server.stop()
        return sweep, sweep_s, before, during, load


def _zstd(body: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(body)


# ---------------------------------------------------------------------------
# Options and main
# ---------------------------------------------------------------------------


def serve_help(python: str, env: dict[str, str]) -> str:
    proc = subprocess.run([python, "-m", "ncpaste", "serve", "--help"], capture_output=True, text=True, cwd=REPO,
                          env={**env, "COLUMNS": "200"})
    if proc.returncode != 0:
        raise SystemExit(f"bench: `{python} -m ncpaste serve --help` failed: {proc.stderr.strip()[-300:]}\n"
                         "run the bench with the project's venv: .venv/bin/python bench/bench.py")
    return proc.stdout


def snapshot_src(dest: Path) -> Path:
    """Copy src/ so that every ncpaste process of this run, started now or in
    ten minutes, runs the same code even while someone edits the tree."""
    shutil.copytree(REPO / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def tree_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def parse_args(argv: list[str], snapshot_dir: Path) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(
        description="ncpaste against fiche, nginx and pinnwand on loopback: absolute figures and in-round ratios.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="about a minute: 1 round, short runs, small growth cells")
    add("--rounds", type=int, help="rounds; figures are medians over them (default 5, quick 1)")
    add("--seconds", type=float, help="length of each ingest run (default 4, quick 1)")
    add("--wrk-seconds", type=int, help="length of each wrk run, whole seconds (default 3, quick 1)")
    add("--client-procs", type=int, default=DEFAULT_CLIENT_PROCS, help="client processes per cell (default 2)")
    add("--growth", type=str,
        help="stored pastes for the growth cells, SMALL,LARGE (default 10000,1000000; quick 1000,20000)")
    add("--sweep-count", type=int, help="expired pastes to sweep (default 100000, quick 5000)")
    add("--rss-clients", type=int, default=64, help="concurrent 1 MiB uploads in the RSS cell (default 64)")
    add("--disk-mib", type=float, help="MiB of log text for the disk cell (default 64, quick 4)")
    add("--workers", help="pass --workers N to ncpaste serve if it has that flag (default: the server's default)")
    add("--ncpaste-args", default="", help="extra arguments for every `ncpaste serve`, one shell-quoted string")
    add("--python", help="python with ncpaste installed (default: this one)")
    add("--pinnwand-venv", type=Path, default=PINNWAND_VENV, help=f"venv with pinnwand (default {PINNWAND_VENV})")
    add("--hypercorn-venv", type=Path, default=HYPERCORN_VENV,
        help=f"venv with hypercorn[trio] (default {HYPERCORN_VENV})")
    add("--only", default="", help="comma list of groups: ingest,get,front,growth,rss,disk,sweep")
    add("--install", action="store_true",
        help="apt-get install nginx, its stream module, fiche and wrk, and pip install pinnwand and hypercorn[trio] "
             "(each in its own venv), if missing")
    add("--json", type=Path, help="write every raw figure here")
    add("--keep-tmp", action="store_true", help="keep the temp dir (logs, data dirs) for a look afterwards")
    add("--no-snapshot", action="store_true",
        help="run ncpaste from the tree as it is at each start instead of a copy of src/ taken at the start")
    args = parser.parse_args(argv)

    quick = args.quick
    python = args.python or sys.executable
    env = dict(os.environ)
    snapshot_note = "the live tree (--no-snapshot)"
    if not args.no_snapshot:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot_dir), env.get("PYTHONPATH")]))
        snapshot_note = f"a copy of src/ taken at start, sha256 {tree_digest(snapshot_dir)[:12]}"
    help_text = serve_help(python, env)
    workers_args: list[str] = []
    if "--workers" in help_text:
        match = re.search(r"^\s+--workers\b.*?(?=^\s+-|\Z)", help_text, re.M | re.S)
        default = re.search(r"default[:\s]+([^)\]]+)", " ".join(match.group(0).split())) if match else None
        if args.workers:
            workers_note = f"--workers {args.workers}"
        else:
            workers_note = f"server default ({default.group(1).strip() if default else 'see --help'})"
        if args.workers:
            workers_args = ["--workers", str(args.workers)]
    else:
        workers_note = "one process (this ncpaste has no --workers flag)"
        if args.workers:
            print("bench: warning: ncpaste serve has no --workers flag; ignoring --workers", file=sys.stderr)
    pinnwand_python = args.pinnwand_venv / "bin" / "python"
    has_pinnwand = pinnwand_python.exists() and subprocess.run(
        [str(pinnwand_python), "-c", "import pinnwand"], capture_output=True).returncode == 0
    hypercorn_python = args.hypercorn_venv / "bin" / "python"
    has_hypercorn = (args.hypercorn_venv / "bin" / "hypercorn").exists() and subprocess.run(
        [str(hypercorn_python), "-c", "import hypercorn.trio"], capture_output=True).returncode == 0
    small, large = (1_000, 20_000) if quick else (10_000, 1_000_000)
    if args.growth:
        small, large = (int(x.replace("_", "")) for x in args.growth.split(","))
    opts = Options(
        quick=quick,
        rounds=args.rounds or (1 if quick else 5),
        ingest_s=args.seconds or (1.0 if quick else 4.0),
        wrk_s=args.wrk_seconds or (1 if quick else 3),
        client_procs=args.client_procs,
        growth_small=small,
        growth_large=large,
        sweep_count=args.sweep_count or (5_000 if quick else 100_000),
        sweep_live=1_000 if quick else 10_000,
        rss_clients=args.rss_clients,
        disk_bytes=int((args.disk_mib or (4 if quick else 64)) * MiB),
        python=python,
        pinnwand_python=str(pinnwand_python) if has_pinnwand else None,
        pinnwand_venv=args.pinnwand_venv,
        hypercorn_python=str(hypercorn_python) if has_hypercorn else None,
        hypercorn_venv=args.hypercorn_venv,
        ncpaste_args=shlex.split(args.ncpaste_args),
        workers_args=workers_args,
        workers_note=workers_note,
        has_workers_flag="--workers" in help_text,
        only={g.strip() for g in args.only.split(",") if g.strip()},
        keep_tmp=args.keep_tmp,
        env=env,
        snapshot_note=snapshot_note,
    )
    return args, opts


def run_header(opts: Options, argv: list[str]) -> list[str]:
    """Date, machine, versions, settings and the command that reproduces the run."""
    started_at = dt.datetime.now(dt.UTC)
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    command = f"cd {shlex.quote(str(REPO))} && {shlex.quote(python)} bench/bench.py {shlex.join(argv)}".rstrip()
    return [
        f"date: {started_at.strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: nproc {os.cpu_count()}, {cpu_model()}, {memory_gib():.0f} GiB, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        f"ncpaste: {git_describe(REPO)}, run from {opts.snapshot_note}; workers: {opts.workers_note}"
        + (f", extra args: {shlex.join(opts.ncpaste_args)}" if opts.ncpaste_args else ""),
        f"references: fiche {deb_version('fiche')}, nginx {deb_version('nginx')}, wrk {deb_version('wrk')}, "
        f"pinnwand {package_version(opts.pinnwand_python, 'pinnwand')}, "
        f"hypercorn {package_version(opts.hypercorn_python, 'hypercorn')} (-k trio, 1 worker), "
        f"ceiling on trio {package_version(opts.python, 'trio')}, h11 {package_version(opts.python, 'h11')}",
        f"rounds: {opts.rounds}, ingest runs {opts.ingest_s:g} s, wrk runs {opts.wrk_s} s "
        f"(wrk -t2 -c64 --latency), {opts.client_procs} client processes; all on 127.0.0.1",
        f"reproduce: {command}",
    ]


def run_cells(bench: Bench) -> None:
    """Set-up once, then every round of every wanted group, then the disk cell."""
    opts = bench.opts
    ingest, gets, front, growth = IngestCells(bench), GetCells(bench), FrontCells(bench), GrowthCells(bench)
    rss, sweep = RssCells(bench), SweepCells(bench)
    bench.say(f"temp dir {bench.tmp}")
    bench.start_servers()
    if bench.want("get"):
        bench.guarded("GET set-up", gets.prepare)
    if bench.want("front"):
        bench.guarded("cache front set-up", front.prepare)
    if bench.want("growth"):
        bench.guarded("growth set-up (bulk load)", growth.prepare)
    for rnd in range(opts.rounds):
        bench.say(f"round {rnd + 1}/{opts.rounds}")
        if bench.want("ingest"):
            ingest.round(rnd)
        if bench.want("get") and gets.urls:
            gets.round(rnd)
        if bench.want("front"):
            front.round(rnd)
        if bench.want("growth") and len(growth.stores) == 2:
            growth.round(rnd)
        if bench.want("rss"):
            rss.round(rnd)
        if bench.want("sweep"):
            sweep.round(rnd)
    if bench.want("disk"):
        DiskCell(bench).run()


def _exit_on_signal(signum: int, _frame: Any) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C does: main's `finally` ends every process.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_bulkload"]:
        bulk_load_main(argv[1:])
        return 0
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--install", action="store_true")
    pre.add_argument("--pinnwand-venv", type=Path, default=PINNWAND_VENV)
    pre.add_argument("--hypercorn-venv", type=Path, default=HYPERCORN_VENV)
    known, _ = pre.parse_known_args(argv)
    if known.install:
        install(known.pinnwand_venv, known.hypercorn_venv)
    tmp = Path(tempfile.mkdtemp(prefix="ncpaste-bench-"))
    try:
        snapshot = snapshot_src(tmp / "src")
        args, opts = parse_args(argv, snapshot)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    header = run_header(opts, argv)
    # Everything this run starts or opens, ended in the `finally` below.
    registry = ProcessRegistry()
    conns = HttpConns()
    bench = Bench(opts, tmp, registry, conns)
    code = 0
    try:
        run_cells(bench)
    except KeyboardInterrupt:
        bench.say("interrupted: ending every process started")
        code = 130
    finally:
        conns.close()
        registry.stop_all()
        if not opts.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)
    if code:
        return code
    results = bench.results
    table = render_table(results)
    print_report(header, table, bench.skip, results.errors)
    ncpaste_failures = sum(row.fails_left for row in results.rows.values())
    ref_failures = sum(row.fails_right for row in results.rows.values())
    if args.json:
        write_json(args.json, header, table, vars(opts), bench.skip, results)
    if results.errors or ncpaste_failures:
        failing_rows = sum(1 for row in results.rows.values() if row.fails_left)
        print(f"\nbench: {len(results.errors)} cell errors; ncpaste failures in {failing_rows} rows", file=sys.stderr)
        return 1
    if ref_failures:
        print(f"\nbench: note: {ref_failures} failures on the reference side (not ncpaste's)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
