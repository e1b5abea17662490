"""The real S3 engines the storage backend is tested against (tests/engines.py),
and the S3 semantics the design relies on, checked on each engine:

* a PUT with ``If-None-Match: *`` creates a key at most once: a second one
  gets 412, and of 16 racing creators exactly one wins and its body stays;
* ``DELETE`` with ``If-Match: <etag>`` is honoured by SeaweedFS 4.48 (a wrong
  etag gets 412 and the object stays); Ceph 16's radosgw ignores the header
  and deletes anyway, so that test xfails there and the design must not rely
  on it;
* on Ceph with 3 OSDs (size 3 / min_size 2), killing one OSD stalls writes
  for a moment and loses none that were acknowledged.

SeaweedFS and the 1-OSD Ceph are shared by the module's tests; the 3-OSD
cluster is the fault test's own. Every engine is always stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import hang_guard
from engines import (
    CephEngine,
    S3Engine,
    SeaweedEngine,
    ceph_available,
    start_ceph,
    start_seaweedfs,
)

pytestmark = pytest.mark.slow

NO_CEPH = pytest.mark.skipif(
    not ceph_available(), reason="Ceph not installed (apt-get install ceph-mon ceph-osd radosgw)"
)

# Upper bounds, in seconds, for each test body (engine start has its own).
BODY_S = 60
RACE_BODY_S = 120
FAULT_BODY_S = 240


# -- helpers ----------------------------------------------------------------------


def status(call: Callable[[], Any]) -> int:
    """The HTTP status of one S3 call (an error response is an answer, too)."""
    try:
        return call()["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]


def quoted_md5(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


@contextlib.contextmanager
def engine_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A directory for an engine's data and logs: removed afterwards unless a
    test failed meanwhile (then its logs are worth reading)."""
    path = tmp_path_factory.mktemp(name)
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


def bucket_for(request: pytest.FixtureRequest) -> str:
    """A bucket name of this test's own (3-63 chars: lowercase, digits, '-')."""
    name = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"t-{name}"[:63].rstrip("-")


# -- engines ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["seaweedfs", pytest.param("ceph", marks=NO_CEPH)])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Engine]:
    """One engine per kind for the whole module, always stopped (gracefully:
    ``stop()`` as the server tests will call it)."""
    with engine_dir(request, tmp_path_factory, request.param) as workdir:
        if request.param == "seaweedfs":
            started: S3Engine = start_seaweedfs(workdir, timeout_s=60)
        else:
            started = start_ceph(workdir, osds=1, timeout_s=180)
        print(f"\n[engine] {started.name} ready in {started.start_seconds:.2f}s at {started.endpoint}")
        try:
            yield started
        finally:
            t0 = time.monotonic()
            started.stop()
            print(f"\n[engine] {started.name} stopped in {time.monotonic() - t0:.2f}s")
        assert not started.alive(), "stop() left a daemon running"
        if isinstance(started, SeaweedEngine):
            # Its own sockets only: other weeds (bench/scale_out.py runs
            # deploy/seaweedfs.sh) may have used numbers that contain ours.
            leftovers = [p for p in started.socket_paths() if p.exists()]
            assert not leftovers, f"unix sockets left behind: {leftovers}"


@pytest.fixture
def bucket(engine: S3Engine, request: pytest.FixtureRequest) -> str:
    name = bucket_for(request)
    engine.make_bucket(name)
    return name


# -- semantics, on every engine ---------------------------------------------------


def test_put_get_round_trip(engine: S3Engine, bucket: str) -> None:
    with hang_guard(BODY_S):
        engine.make_bucket(bucket)  # idempotent
        client = engine.client()
        rng = random.Random(1)
        for key, body in [
            ("empty", b""),
            ("small", b"hello, paste\n"),
            ("binary-1MiB", rng.randbytes(1 << 20)),
            ("dir/like/key.txt", "snowman \u2603\n".encode()),
        ]:
            put = client.put_object(Bucket=bucket, Key=key, Body=body)
            assert put["ETag"] == quoted_md5(body)
            got = client.get_object(Bucket=bucket, Key=key)
            assert got["Body"].read() == body
            assert got["ContentLength"] == len(body)
        assert status(lambda: client.head_object(Bucket=bucket, Key="missing")) == 404


def test_conditional_create_once(engine: S3Engine, bucket: str) -> None:
    with hang_guard(BODY_S):
        client = engine.client()
        first = status(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*"))
        second = status(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*"))
        assert (first, second) == (200, 412)
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
        # an unconditional PUT still overwrites
        assert status(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"third")) == 200
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"third"


def test_concurrent_creators_exactly_one_wins(engine: S3Engine, bucket: str) -> None:
    """16 threads PUT the same new key with If-None-Match: * at once.
    SeaweedFS serialises them on a per-key lock that it polls about once a
    second, so the last loser may wait ~15 s for its 412 (hence the bound)."""
    writers = 16
    with hang_guard(RACE_BODY_S):
        client = engine.client(max_pool_connections=writers)  # no retries: each status is first-hand
        for round_no in range(2):
            key = f"race-{round_no}"
            start = threading.Barrier(writers, timeout=30)

            def create(i: int, key: str = key, start: threading.Barrier = start) -> tuple[int, float]:
                body = f"writer {i}".encode()
                start.wait()
                t0 = time.monotonic()
                answer = status(lambda: client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*"))
                return answer, time.monotonic() - t0

            with ThreadPoolExecutor(writers) as pool:
                answers = list(pool.map(create, range(writers)))
            statuses = [answer for answer, _ in answers]
            counts = Counter(statuses)
            winners = [i for i, s in enumerate(statuses) if s == 200]
            # AWS answers a racing conditional write with 409 ConditionalRequestConflict
            assert len(winners) == 1 and set(counts) <= {200, 409, 412}, f"{key}: {dict(counts)}"
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert body == f"writer {winners[0]}".encode(), f"{key}: the winner's body must be the one stored"
            slowest = max(seconds for _, seconds in answers)
            print(f"\n[race] {engine.name} {key}: {dict(counts)}, slowest answer {slowest:.2f}s")


def test_conditional_delete(engine: S3Engine, bucket: str) -> None:
    """DELETE with If-Match: a wrong etag must leave the object alone.
    SeaweedFS 4.48 honours it; Ceph 16 (Debian bookworm) ignores the header
    and deletes, so there this xfails, and the design must not rely on it."""
    with hang_guard(BODY_S):
        client = engine.client()
        etag = client.put_object(Bucket=bucket, Key="k", Body=b"keep me")["ETag"]
        wrong = quoted_md5(b"something else")
        answer = status(lambda: client.delete_object(Bucket=bucket, Key="k", IfMatch=wrong))
        kept = status(lambda: client.head_object(Bucket=bucket, Key="k")) == 200
        print(f"\n[if-match delete] {engine.name}: wrong etag -> {answer}, object kept: {kept}")
        if not kept and answer in (200, 204):
            pytest.xfail(f"{engine.name} ignores If-Match on DELETE (answered {answer} and deleted)")
        assert (answer, kept) == (412, True)
        assert status(lambda: client.delete_object(Bucket=bucket, Key="k", IfMatch=etag)) == 204
        assert status(lambda: client.head_object(Bucket=bucket, Key="k")) == 404


# -- Ceph: an OSD dies under a stream of writes -----------------------------------


@pytest.fixture
def ceph3(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephEngine]:
    with engine_dir(request, tmp_path_factory, "ceph3") as workdir:
        started = start_ceph(workdir, osds=3, timeout_s=180)
        print(f"\n[engine] ceph with 3 OSDs ready in {started.start_seconds:.2f}s at {started.endpoint}")
        try:
            yield started
        finally:
            started.stop()
        assert not started.alive(), "stop() left a daemon running"


@NO_CEPH
def test_ceph_osd_killed_mid_stream_loses_no_acknowledged_put(ceph3: CephEngine) -> None:
    """Smoke test of ``start_ceph(osds=3)`` and ``kill_osd``: writes go on
    (degraded: 2 of 3 replicas >= min_size) and every PUT that was answered
    200 reads back byte for byte."""
    with hang_guard(FAULT_BODY_S):
        ceph3.make_bucket("stream")
        ceph3.client().put_object(Bucket="stream", Key="first", Body=b"creates the data pool")
        pools = json.loads(ceph3.ceph("osd", "pool", "ls", "detail", "-f", "json"))
        assert {p["pool_name"]: (p["size"], p["min_size"]) for p in pools} == {
            p["pool_name"]: (3, 2) for p in pools
        } and any(p["pool_name"].endswith("buckets.data") for p in pools), pools
        writer_client = ceph3.client(read_timeout=45)
        acked: dict[str, bytes] = {}
        failed: list[tuple[str, str]] = []
        timings: list[tuple[float, float]] = []  # (start, end) of each answered PUT
        stop_writing = threading.Event()
        lock = threading.Lock()

        def writer() -> None:
            rng = random.Random(7)
            t_end = time.monotonic() + 150
            for i in range(100_000):
                if stop_writing.is_set() or time.monotonic() > t_end:
                    return
                key = f"obj-{i:06d}"
                body = rng.randbytes(rng.randrange(1, 64 << 10))
                t0 = time.monotonic()
                try:
                    reply = writer_client.put_object(Bucket="stream", Key=key, Body=body)
                except (ClientError, BotoCoreError) as exc:
                    with lock:
                        failed.append((key, repr(exc)))
                    continue
                t1 = time.monotonic()
                with lock:
                    timings.append((t0, t1))
                    if reply["ResponseMetadata"]["HTTPStatusCode"] == 200 and reply["ETag"] == quoted_md5(body):
                        acked[key] = body
                    else:
                        failed.append((key, f"answer {reply['ResponseMetadata']['HTTPStatusCode']} {reply.get('ETag')}"))

        def acks() -> int:
            with lock:
                return len(acked)

        def wait_for_acks(n: int, timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while acks() < n:
                assert time.monotonic() < deadline, f"only {acks()} PUTs acknowledged, waited for {n}"
                assert thread.is_alive(), "writer stopped"
                time.sleep(0.05)

        thread = threading.Thread(target=writer, name="put-stream", daemon=True)
        thread.start()
        try:
            wait_for_acks(50, timeout_s=60)
            before_kill = acks()
            t_kill = time.monotonic()
            ceph3.kill_osd(0)
            marked_down_s = ceph3.wait_osds_up({1, 2}, timeout_s=60)
            wait_for_acks(before_kill + 100, timeout_s=90)
        finally:
            stop_writing.set()
            thread.join(timeout=60)
        assert not thread.is_alive()

        # the longest any PUT in flight at or after the kill waited for its answer
        stall = max((end - max(start, t_kill) for start, end in timings if end >= t_kill), default=0.0)
        after_kill = sum(1 for start, end in timings if start >= t_kill)
        print(f"\n[osd kill] marked down after {marked_down_s:.2f}s; longest PUT stall {stall:.2f}s; "
              f"{before_kill} acked before, {after_kill} answered after; {len(failed)} failed: {failed[:3]}")

        reader = ceph3.client(attempts=3)
        with lock:
            expected = dict(acked)
        wrong = [key for key, body in expected.items()
                 if reader.get_object(Bucket="stream", Key=key)["Body"].read() != body]
        assert not wrong, f"{len(wrong)} of {len(expected)} acknowledged PUTs read back wrong: {wrong[:5]}"

        # the killed OSD comes back on its own data
        ceph3.restart_osd(0)
        back_s = ceph3.wait_osds_up({0, 1, 2}, timeout_s=60)
        print(f"[osd kill] osd.0 up again after {back_s:.2f}s")
        key = next(iter(expected))
        assert reader.get_object(Bucket="stream", Key=key)["Body"].read() == expected[key]
