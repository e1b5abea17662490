"""Several real ncpaste nodes on one bucket of a real engine (SeaweedFS):
paste through any node, read through any other; one alias winner across
nodes; deletes and expiry seen everywhere within the documented bound; a
node killed with -9 loses nothing it acknowledged; an engine that goes away
gives clear errors and the node lives on."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import trio

from conftest import FakeClock, fetch, key_of, nc, paste_blocking, s3_url, start_server

pytestmark = pytest.mark.slow

# Nodes in these tests revalidate their read cache after this long: the bound
# on how long a delete made on one node may go unseen on another.
CACHE_TTL_S = 0.5


@pytest.fixture
def three_nodes(s3_env, cli_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = s3_url(s3_env)
    return [
        cli_server("--store", store, "--store-cache-ttl", str(CACHE_TTL_S), "--limits", "off",
                   data_dir=tmp_path / f"node-{name}")
        for name in "abc"
    ]


def _get(port: int, path: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_paste_on_any_node_read_on_any_other(three_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, c = three_nodes
    body = "".join(f"step {i}: ok ✓\n" for i in range(2000)).encode()
    url = paste_blocking(a.tcp_port, body).decode().strip()
    assert url.startswith(a.base_url + "/")
    key = key_of(url)
    for node in (a, b, c):
        assert _get(node.http_port, "/" + key) == (200, body)
    # And the other way round, over HTTP.
    import urllib.request

    request = urllib.request.Request(c.base_url + "/", data=b"from C\n", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        key_c = key_of(response.read())
    assert _get(a.http_port, "/" + key_c) == (200, b"from C\n")


def test_alias_claimed_on_all_nodes_at_once_has_one_winner(three_nodes) -> None:  # type: ignore[no-untyped-def]
    import http.client

    results: dict[int, int] = {}
    start = threading.Barrier(len(three_nodes))

    def claim(index: int, port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        conn.request("PUT", "/release-1.0", body=b"node %d\n" % index)
        results[index] = conn.getresponse().status
        conn.close()

    threads = [threading.Thread(target=claim, args=(i, node.http_port)) for i, node in enumerate(three_nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results.values()) == [201, 409, 409]
    winner = next(i for i, status in results.items() if status == 201)
    for node in three_nodes:
        assert _get(node.http_port, "/release-1.0") == (200, b"node %d\n" % winner)


def test_delete_on_one_node_is_seen_on_the_others_within_the_cache_ttl(three_nodes) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    a, b, c = three_nodes
    request = urllib.request.Request(a.base_url + "/", data=b"oops, a secret\n", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        key = key_of(response.read())
        token = response.headers["X-Delete-Token"]
    for node in (b, c):
        assert _get(node.http_port, "/" + key)[0] == 200  # now in their caches
    delete = urllib.request.Request(f"{c.base_url}/{key}", method="DELETE", headers={"X-Delete-Token": token})
    with urllib.request.urlopen(delete, timeout=30) as response:
        assert response.status == 204
    deleted_at = time.monotonic()
    assert _get(c.http_port, "/" + key)[0] == 404
    for node in (a, b):
        while _get(node.http_port, "/" + key)[0] != 404:
            assert time.monotonic() - deleted_at < CACHE_TTL_S + 3.0, "a delete stayed unseen too long"
            time.sleep(0.05)


def test_burn_after_read_across_nodes_serves_once(three_nodes) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    request = urllib.request.Request(three_nodes[0].base_url + "/?burn=1", data=b"one time\n", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        key = key_of(response.read())
    statuses: list[int] = []
    start = threading.Barrier(6)

    def read(port: int) -> None:
        start.wait()
        status, body = _get(port, "/" + key)
        statuses.append(status)
        if status == 200:
            assert body == b"one time\n"

    threads = [threading.Thread(target=read, args=(three_nodes[i % 3].http_port,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 404, 404, 404, 404, 404]


async def test_expiry_on_one_node_is_seen_on_all(s3_env, config, nursery: trio.Nursery, tmp_path: Path) -> None:
    clock = FakeClock()
    store = s3_url(s3_env)
    a = await start_server(nursery, config, clock, store=store, data_dir=tmp_path / "a", store_cache_ttl_s=3600.0)
    b = await start_server(nursery, config, clock, store=store, data_dir=tmp_path / "b", store_cache_ttl_s=3600.0)
    with trio.fail_after(30):
        key = key_of(await nc(a.tcp_port, b"#!ncpaste expire=10m\nshort-lived\n"))
        assert (await fetch(b.http_port, "GET", "/" + key)).body == b"short-lived\n"
        clock.advance(599)
        assert (await fetch(b.http_port, "GET", "/" + key)).status == 200
        clock.advance(1)
        # Exact on every node, however long their caches are.
        assert (await fetch(a.http_port, "GET", "/" + key)).status == 404
        assert (await fetch(b.http_port, "GET", "/" + key)).status == 404
        assert await b.store.sweep_expired() == 1
        assert await a.store.sweep_expired() == 0


def test_killing_a_node_loses_nothing_it_acknowledged(s3_env, cli_server, tmp_path: Path) -> None:
    store = s3_url(s3_env)
    a = cli_server("--store", store, "--limits", "off", data_dir=tmp_path / "node-a")
    b = cli_server("--store", store, "--limits", "off", data_dir=tmp_path / "node-b")
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            size = rng.choice([20, 2_000, 60_000, 300_000])
            body = "".join(f"c{seed} {rng.random():.12f} ✓\n" for _ in range(max(size // 25, 1))).encode()
            try:
                reply = paste_blocking(a.tcp_port, body)
            except OSError:
                continue  # refused or reset by the kill: never acknowledged
            if reply.startswith(b"http://"):
                with lock:
                    acknowledged[key_of(reply)] = body

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    os.kill(a.proc.pid, signal.SIGKILL)  # mid-stream: clients are still sending
    a.proc.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acknowledged) > 20, "the load did not get going"
    for key, body in acknowledged.items():
        assert _get(b.http_port, "/" + key) == (200, body), key


class Outage:
    """A TCP relay between a node and the engine that can be cut (connection
    refused, open connections reset) and restored on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scope: trio.CancelScope | None = None

    async def up(self, nursery: trio.Nursery) -> None:
        self._scope = await nursery.start(self._serve)

    def down(self) -> None:
        assert self._scope is not None
        self._scope.cancel()

    async def _serve(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(scope)
            await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", self.target_port) as engine:

            async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    while data := await source.receive_some(65536):
                        await sink.send_all(data)
                nursery.cancel_scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, engine)
                nursery.start_soon(pump, engine, client)


async def test_an_engine_outage_gives_clear_errors_and_the_node_lives_on(
    s3_env, config, nursery: trio.Nursery, tmp_path: Path, clock: FakeClock
) -> None:
    from urllib.parse import urlsplit

    outage = Outage(urlsplit(s3_env.endpoint).port)
    await outage.up(nursery)
    engine_via_relay = s3_url(s3_env).replace(s3_env.endpoint, f"http://127.0.0.1:{outage.port}")
    node = await start_server(nursery, config, clock, store=engine_via_relay, data_dir=tmp_path / "node")
    with trio.fail_after(60):
        key = key_of(await nc(node.tcp_port, b"before the outage\n"))
        outage.down()
        assert await nc(node.tcp_port, b"during the outage\n") == b"error: storage unavailable\n"
        posted = await fetch(node.http_port, "POST", "/", b"during the outage\n")
        assert posted.status == 503 and posted.body.startswith(b"error: storage unavailable")
        read = await fetch(node.http_port, "GET", "/Zz9Zz9Zz9Zz9")  # in no cache
        assert read.status == 503 and read.body.startswith(b"error: storage unavailable")
        assert (await fetch(node.http_port, "GET", "/healthz")).status == 503
        # The engine comes back: the node goes on by itself, nothing was lost.
        await outage.up(nursery)
        assert (await fetch(node.http_port, "GET", "/healthz")).status == 200
        assert (await fetch(node.http_port, "GET", "/" + key)).body == b"before the outage\n"
        after = key_of(await nc(node.tcp_port, b"after the outage\n"))
        assert (await fetch(node.http_port, "GET", "/" + after)).body == b"after the outage\n"


async def test_a_live_paste_written_on_one_node_is_followed_on_another(
    s3_env, config, nursery: trio.Nursery, tmp_path: Path, clock: FakeClock
) -> None:
    from test_live import dechunk, open_reader, open_writer, read_until

    store = s3_url(s3_env)
    a = await start_server(nursery, config, clock, store=store, data_dir=tmp_path / "a")
    b = await start_server(nursery, config, clock, store=store, data_dir=tmp_path / "b")
    with trio.fail_after(30):
        writer, url = await open_writer(a)
        key = key_of(url)
        await writer.send_all(b"compiling...\n")
        # Node B knows nothing of A's writer: it follows what A committed.
        reader, raw = await open_reader(b, key)
        raw = await read_until(reader, raw, b"compiling...\n")
        await writer.send_all(b"tests passed\n")
        raw = await read_until(reader, raw, b"tests passed\n")
        await writer.send_eof()
        while not dechunk(raw)[1]:
            raw += await reader.receive_some(65536)
        assert dechunk(raw) == (b"compiling...\ntests passed\n", True)
        done = await fetch(b.http_port, "GET", "/" + key)
        assert done.body == b"compiling...\ntests passed\n" and done.headers["x-paste-state"] == "complete"
        await writer.aclose()
        await reader.aclose()


def test_a_node_that_cannot_use_its_bucket_says_why_and_exits_1(s3_env, tmp_path: Path) -> None:
    import subprocess
    import sys

    def serve(store: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ncpaste", "serve", "--store", store, "--data-dir", str(tmp_path / "node"),
             "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--live", "off"],
            capture_output=True, text=True, timeout=60, env={**os.environ, **env},
        )

    missing = serve(f"s3://no-such-bucket/p?endpoint={s3_env.endpoint}")
    assert missing.returncode == 1 and missing.stderr.strip().endswith(": no such bucket")
    refused = serve(s3_url(s3_env), AWS_SECRET_ACCESS_KEY="wrong")
    assert refused.returncode == 1 and refused.stderr.strip().endswith("refused the credentials (403)")
    down = serve(s3_url(s3_env).replace(s3_env.endpoint, "http://127.0.0.1:1"))
    assert down.returncode == 1 and down.stderr.strip().endswith("the engine does not answer")
    assert "wrong" not in refused.stderr  # the secret is never printed


def test_a_node_with_several_workers_shares_the_bucket(s3_env, cli_server, tmp_path: Path) -> None:
    store = s3_url(s3_env)
    node = cli_server("--store", store, "--workers", "2", "--limits", "off", data_dir=tmp_path / "node")
    other = cli_server("--store", store, "--limits", "off", data_dir=tmp_path / "other")
    keys = [key_of(paste_blocking(node.tcp_port, b"paste %d\n" % i)) for i in range(20)]
    assert len(set(keys)) == 20
    for i, key in enumerate(keys):
        assert _get(other.http_port, "/" + key) == (200, b"paste %d\n" % i)


async def test_a_reader_stops_following_a_live_paste_whose_writer_node_died(
    s3_env, config, nursery: trio.Nursery, tmp_path: Path, clock: FakeClock
) -> None:
    from test_live import dechunk, open_reader, read_until

    from ncpaste.core import keys
    from ncpaste.store import NewLivePaste

    store = s3_url(s3_env)
    reader_node = await start_server(nursery, config, clock, store=store, data_dir=tmp_path / "b")
    # What a node leaves behind when it dies mid-stream: an open paste with
    # committed groups, and nobody left to finish it.
    created = await reader_node.store.create_live(NewLivePaste(keys.token_hash("t"), 600, 3600))
    await reader_node.store.append_live(created.key, 1, b"last words\n", 11)
    with trio.fail_after(30):
        started = trio.current_time()
        reader, raw = await open_reader(reader_node, created.key)
        raw = await read_until(reader, raw, b"last words\n")
        while not dechunk(raw)[1]:
            got = await reader.receive_some(65536)
            assert got, "the response ended without its last chunk"
            raw += got
        waited = trio.current_time() - started
    # Ended cleanly, with what was committed, after twice the idle timeout.
    assert dechunk(raw) == (b"last words\n", True)
    assert 2 * config.live_idle_timeout_s <= waited < 2 * config.live_idle_timeout_s + 5
    await reader.aclose()
