"""Where an ingest cell's time goes: pastes per synced commit, and the CPU
of each server thread, for 1 or more workers on the embedded store.

    .venv/bin/python bench/commit_groups.py [--conc 32] [--seconds 6] [--workers 1 2] [--size 1024]

For each worker count: a fresh ncpaste (limits and live off, as bench.py
runs it), ``--conc`` netcat clients pasting back to back for ``--seconds``,
and then

- pastes per commit: the pastes made ÷ the synced write transactions
  (``ncpaste stats --json``, read before and after the load);
- server CPU per paste and how many cores the server and the clients used
  (on 2 cores they share the machine);
- each server thread's user and kernel CPU per paste (``/proc/PID/task``):
  the event loop and the writer thread of every worker.

It answers the question of issue #15: whether more workers are held back by
the cores or by the commit path. No reference runs beside it: these are
shares of one run, not ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clients import ClientSpec, HttpConns, bodies_for, run_clients  # noqa: E402
from bench_servers import CLK_TCK, REPO, Ncpaste, ProcessRegistry  # noqa: E402

#: A thread that used less than this much CPU in the run is left out.
MIN_THREAD_CPU_S = 0.05
#: Different bodies each client cycles through.
BODIES = 16


def commits(python: str, data_dir: Path) -> int:
    out = subprocess.run([python, "-m", "ncpaste", "stats", "--json", "--data-dir", str(data_dir)],
                         check=True, capture_output=True, cwd=REPO, timeout=120).stdout
    return int(json.loads(out)["commits"])


def thread_cpu(pids: list[int]) -> dict[tuple[int, int], tuple[float, float]]:
    """(pid, tid) → (user s, kernel s) of every thread of ``pids``."""
    cpu = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            cpu[(pid, int(tid))] = (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)
    return cpu


def run_one(python: str, workers: int, conc: int, seconds: float, size: int) -> None:
    registry, conns = ProcessRegistry(), HttpConns()
    with tempfile.TemporaryDirectory(prefix="ncpaste-groups-") as tmp_name:
        tmp = Path(tmp_name)
        server = Ncpaste(tmp, tmp / "data", registry, conns, python=python,
                         extra_args=["--workers", str(workers)], env=dict(os.environ))
        server.start()
        try:
            commits_before, cpu_before = commits(python, server.data_dir), server.cpu()
            threads_before = thread_cpu(server.pids())
            result = run_clients(ClientSpec("nc", server.tcp, bodies_for(size, BODIES, seed=1)), conc,
                                 procs=2, registry=registry, duration_s=seconds)
            cpu, threads_after = server.cpu() - cpu_before, thread_cpu(server.pids())
            made = commits(python, server.data_dir) - commits_before
        finally:
            server.stop()
            registry.stop_all()
    pastes = result["ok"]
    print(f"--workers {workers}, {conc} clients × {size} B for {seconds:g} s: {result['rate']:,.0f} pastes/s, "
          f"{result['failed']} failed, p50 {result['p50_ms']:.2f} ms")
    print(f"  {made:,} synced commits for {pastes:,} pastes: {pastes / max(1, made):.1f} pastes per commit")
    print(f"  server CPU {1e6 * cpu / max(1, pastes):,.0f} µs per paste; cores used: server "
          f"{cpu / result['elapsed_s']:.2f}, clients {result['client_cpu_pct'] / 100:.2f}")
    for (pid, tid), (user, kernel) in sorted(threads_after.items()):
        user0, kernel0 = threads_before.get((pid, tid), (0.0, 0.0))
        if user - user0 + kernel - kernel0 < MIN_THREAD_CPU_S:
            continue
        role = "event loop" if pid == tid else "thread"
        print(f"  pid {pid} {role:<10} tid {tid}: user {1e6 * (user - user0) / max(1, pastes):5.0f} µs, "
              f"kernel {1e6 * (kernel - kernel0) / max(1, pastes):5.0f} µs per paste")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conc", type=int, default=32, help="netcat clients at once (default 32)")
    parser.add_argument("--seconds", type=float, default=6.0, help="load per worker count (default 6)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per paste (default 1024)")
    parser.add_argument("--python", default=sys.executable, help="python with ncpaste installed")
    opts = parser.parse_args()
    for workers in opts.workers:
        run_one(opts.python, workers, opts.conc, opts.seconds, opts.size)


if __name__ == "__main__":
    main()
