"""Expiry with an injected clock: no test waits for real minutes."""

from __future__ import annotations

import gzip

import trio

from conftest import fetch, key_of, nc, start_server


async def test_paste_is_not_served_after_expiry_and_sweep_removes_it(server, clock):
    key = key_of(await nc(server.tcp_port, b"#!ncpaste expire=30s\nshort-lived\n"))
    keeper = key_of(await nc(server.tcp_port, b"#!ncpaste expire=1h\nstays\n"))
    clock.advance(29)
    assert (await fetch(server.http_port, "GET", "/" + key)).body == b"short-lived\n"
    clock.advance(1)
    gone = await fetch(server.http_port, "GET", "/" + key)
    assert gone.status == 404 and gone.body == b"error: no such paste (it may have expired)\n"
    store = server.store
    assert (await store.stats()).pastes == 2  # not served, but not yet swept
    assert await store.sweep_expired() == 1
    stats = await store.stats()
    assert stats.pastes == 1 and stats.expiry_entries == 1
    assert (await fetch(server.http_port, "GET", "/" + keeper)).body == b"stays\n"


async def test_default_and_capped_expiry(server, clock):
    default = key_of(await nc(server.tcp_port, b"default\n"))
    capped = key_of(await nc(server.tcp_port, b"#!ncpaste expire=52w\ncapped\n"))
    clock.advance(7 * 86400 - 1)
    assert (await fetch(server.http_port, "GET", "/" + default)).status == 200
    clock.advance(1)
    assert (await fetch(server.http_port, "GET", "/" + default)).status == 404
    clock.advance(90 * 86400 - 7 * 86400 - 1)
    assert (await fetch(server.http_port, "GET", "/" + capped)).status == 200
    clock.advance(1)
    assert (await fetch(server.http_port, "GET", "/" + capped)).status == 404


async def test_cache_max_age_never_outlives_the_paste(server, clock):
    key = key_of(await nc(server.tcp_port, b"#!ncpaste expire=10m\nx\n"))
    clock.advance(9 * 60)
    got = await fetch(server.http_port, "GET", "/" + key)
    assert got.headers["cache-control"] == "public, max-age=60, s-maxage=5"


async def test_alias_is_free_again_once_expired(server, clock):
    first = await nc(server.tcp_port, b"#!ncpaste alias=nightly expire=1h\nmonday\n")
    assert first.strip().endswith(b"/nightly")
    taken = await nc(server.tcp_port, b"#!ncpaste alias=nightly\ntuesday\n")
    assert taken.startswith(b"error: alias 'nightly' is taken")
    clock.advance(3600)
    again = await nc(server.tcp_port, b"#!ncpaste alias=nightly\ntuesday\n")
    assert again.strip().endswith(b"/nightly")
    assert (await fetch(server.http_port, "GET", "/nightly")).body == b"tuesday\n"


async def test_periodic_sweep_task_runs(nursery, config, clock):
    server = await start_server(nursery, config, clock, sweep_interval_s=0.05)
    for n in range(20):
        await nc(server.tcp_port, b"#!ncpaste expire=1m\n%d\n" % n)
    clock.advance(61)
    store = server.store
    with trio.fail_after(5):
        while (await store.stats()).pastes:
            await trio.sleep(0.05)
    assert (await store.stats()).expiry_entries == 0


async def test_periodic_pool_refill_task_runs(nursery, config, clock):
    server = await start_server(nursery, config, clock, pool_refill_interval_s=0.05, pool_target=50)
    store = server.store
    with trio.fail_after(5):
        while (await store.stats()).pool_keys < 50:
            await trio.sleep(0.05)
    await nc(server.tcp_port, b"x\n")
    with trio.fail_after(5):
        while (await store.stats()).pool_keys < 50:
            await trio.sleep(0.05)
    assert (await store.stats()).pool_keys == 50


async def test_a_hot_paste_read_again_counts_its_life_down_and_goes_when_deleted(server, clock):
    """Reads of a hot paste reuse the response built for the first of them
    (net/hot.py): its max-age must still follow the clock, each coding and
    HEAD keep their own headers, and a delete ends it at once."""
    created = await fetch(server.http_port, "POST", "/?expire=10m", b"hot\n" * 100)
    key = created.body.decode().strip().rsplit("/", 1)[1]
    token = created.headers["x-delete-token"]

    async def read(method: str = "GET", coding: str = "identity") -> tuple[str, bytes, str | None]:
        got = await fetch(server.http_port, method, "/" + key, headers={"Accept-Encoding": coding})
        assert got.status == 200
        return got.headers["cache-control"], got.body, got.headers.get("content-encoding")

    for _ in range(3):  # the first read makes it hot, the next ones are answered as built
        assert await read() == ("public, max-age=600, s-maxage=5", b"hot\n" * 100, None)
    clock.advance(1.5)
    assert (await read())[0] == "public, max-age=598, s-maxage=5"
    clock.advance(0.4)
    assert (await read())[0] == "public, max-age=598, s-maxage=5"
    clock.advance(0.2)
    assert (await read())[0] == "public, max-age=597, s-maxage=5"
    for _ in range(2):
        assert await read("HEAD") == ("public, max-age=597, s-maxage=5", b"", None)
        cache, gzipped, coding = await read(coding="gzip")
        assert coding == "gzip" and gzip.decompress(gzipped) == b"hot\n" * 100
    assert (await read())[1] == b"hot\n" * 100  # the plain answer is still the plain one
    deleted = await fetch(server.http_port, "DELETE", "/" + key, headers={"X-Delete-Token": token})
    assert deleted.status == 204
    assert (await fetch(server.http_port, "GET", "/" + key)).status == 404
