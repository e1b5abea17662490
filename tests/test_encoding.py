"""Content codings on reads: the stored zstd frame passed through, gzip for
the rest, identity for ranges; and the hot cache never serving stale bytes."""

from __future__ import annotations

import gzip

import zstandard

from conftest import fetch, key_of, nc

LOG = "".join(f"2026-11-29T10:{n % 60:02d}:00Z INFO step {n} ok ✓\n" for n in range(3000)).encode()


async def test_zstd_passthrough_and_gzip_and_identity(server):
    key = key_of(await nc(server.tcp_port, LOG))
    plain = await fetch(server.http_port, "GET", "/" + key)
    assert plain.body == LOG and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "accept, accept-encoding"

    zstd = await fetch(server.http_port, "GET", "/" + key, headers={"Accept-Encoding": "gzip, zstd"})
    assert zstd.headers["content-encoding"] == "zstd"
    assert int(zstd.headers["content-length"]) == len(zstd.body) < len(LOG) // 4
    assert zstandard.ZstdDecompressor().decompress(zstd.body) == LOG
    assert zstd.headers["etag"] != plain.headers["etag"]

    gz = await fetch(server.http_port, "GET", "/" + key, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gzip.decompress(gz.body) == LOG

    refused = await fetch(server.http_port, "GET", "/" + key, headers={"Accept-Encoding": "zstd;q=0, br"})
    assert "content-encoding" not in refused.headers and refused.body == LOG

    ranged = await fetch(server.http_port, "GET", "/" + key,
                         headers={"Accept-Encoding": "zstd", "Range": "bytes=-10"})
    assert ranged.status == 206 and ranged.body == LOG[-10:]
    assert "content-encoding" not in ranged.headers

    again = await fetch(server.http_port, "GET", "/" + key,
                        headers={"Accept-Encoding": "zstd", "If-None-Match": zstd.headers["etag"]})
    assert again.status == 304


async def test_hot_cache_never_serves_a_deleted_or_replaced_paste(server, clock):
    first = await nc(server.tcp_port, b"#!ncpaste alias=reused expire=1m token=1\nfirst version\n")
    token = first.split(b"token: ")[1].strip().decode()
    assert (await fetch(server.http_port, "GET", "/reused")).body == b"first version\n"
    assert (await fetch(server.http_port, "GET", "/reused")).body == b"first version\n"  # cached now
    deleted = await fetch(server.http_port, "DELETE", "/reused", headers={"X-Delete-Token": token})
    assert deleted.status == 204
    assert (await fetch(server.http_port, "GET", "/reused")).status == 404
    await nc(server.tcp_port, b"#!ncpaste alias=reused\nsecond version\n")
    assert (await fetch(server.http_port, "GET", "/reused")).body == b"second version\n"
    clock.advance(8 * 86400)
    assert (await fetch(server.http_port, "GET", "/reused")).status == 404
