"""The fault test through ncpaste: two nodes on a 3-OSD Ceph cluster
(replicas 3, min_size 2); one OSD is killed with -9 while clients paste
through both nodes. Not one acknowledged paste may be lost: every URL
handed out serves its exact bytes afterwards, from either node."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from test_scale_out import _get

from conftest import S3_BUCKET, hang_guard, key_of, paste_blocking, s3_url

pytestmark = [pytest.mark.slow, pytest.mark.ceph]

CLIENTS = 8
# Ceph itself is quick to route around a dead OSD (well under a second
# here); the load runs this long on each side of the kill.
PHASE_S = 3.0


@pytest.fixture
def ceph3(tmp_path: Path):  # type: ignore[no-untyped-def]
    from engines import ceph_available, start_ceph

    if not ceph_available():
        pytest.skip("Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw)")
    engine = start_ceph(tmp_path / "ceph", osds=3)
    try:
        engine.make_bucket(S3_BUCKET)
        yield engine
    finally:
        engine.stop()


def test_an_osd_killed_mid_stream_loses_no_acknowledged_paste(ceph3, cli_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ceph3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ceph3.secret_key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = s3_url(ceph3)
    nodes = [cli_server("--store", store, "--limits", "off", data_dir=tmp_path / f"node-{n}") for n in "ab"]
    acknowledged: dict[str, bytes] = {}
    refused: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        node = nodes[seed % 2]
        while not stop.is_set():
            size = rng.choice([30, 3_000, 60_000, 500_000])
            body = "".join(f"c{seed} {rng.random():.12f} ✓\n" for _ in range(max(size // 25, 1))).encode()
            reply = paste_blocking(node.tcp_port, body)
            with lock:
                if reply.startswith(b"http://"):
                    acknowledged[key_of(reply)] = body
                else:
                    refused.append(reply)  # an error line: never acknowledged

    with hang_guard(180):
        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(PHASE_S)
        with lock:
            before = len(acknowledged)
        ceph3.kill_osd(0)
        time.sleep(PHASE_S)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert before > 20, "the load did not get going"
        assert len(acknowledged) > before + 20, "pastes stopped after the OSD was killed"
        assert all(line.startswith(b"error: ") for line in refused), refused[:3]
        for key, body in acknowledged.items():
            assert _get(nodes[1].http_port, "/" + key) == (200, body), key
        print(f"\n[osd kill] {before} pastes acknowledged before the kill, "
              f"{len(acknowledged) - before} after, {len(refused)} refused; none lost")
