"""/metrics end to end: what operators scrape after real traffic."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from conftest import fetch, key_of, nc, start_server


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_what_happened(nursery, config, clock):
    server = await start_server(nursery, config, clock, max_paste_bytes=100, stats_interval_s=0.05)
    key = key_of(await nc(server.tcp_port, b"hello\n"))
    await nc(server.tcp_port, b"x" * 500)  # too large
    await nc(server.tcp_port, b"a\0b")  # not text
    created = await fetch(server.http_port, "POST", "/", b"via http\n")
    assert created.status == 201
    await fetch(server.http_port, "PUT", "/taken-name", b"one\n")
    await fetch(server.http_port, "PUT", "/taken-name", b"two\n")  # alias taken
    got = await fetch(server.http_port, "GET", "/" + key)
    assert got.body == b"hello\n"

    scrape = await fetch(server.http_port, "GET", "/metrics")
    assert scrape.status == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    values = samples(scrape.body)
    assert values[("ncpaste_pastes_total", (("outcome", "created"), ("port", "tcp")))] == 1
    assert values[("ncpaste_pastes_total", (("outcome", "created"), ("port", "http")))] == 2
    assert values[("ncpaste_rejections_total", (("port", "tcp"), ("reason", "too_large")))] == 1
    assert values[("ncpaste_rejections_total", (("port", "tcp"), ("reason", "not_text")))] == 1
    assert values[("ncpaste_rejections_total", (("port", "http"), ("reason", "alias_taken")))] == 1
    assert values[("ncpaste_netcat_endings_total", (("how", "fin"),))] == 1
    assert values[("ncpaste_bytes_in_total", (("port", "tcp"),))] == 6
    assert values[("ncpaste_bytes_out_total", ())] >= 6
    assert values[("ncpaste_request_duration_seconds_count", (("kind", "create"),))] >= 3
    assert values[("ncpaste_request_duration_seconds_count", (("kind", "read"),))] == 1
    # the scrape's own connection is open while it is rendered
    assert values[("ncpaste_open_connections", (("port", "http"),))] >= 1


async def test_metrics_allow_restricts_scrapers(nursery, config, clock):
    server = await start_server(nursery, config, clock, metrics_allow=("10.0.0.0/8",))
    denied = await fetch(server.http_port, "GET", "/metrics")
    assert denied.status == 403
    assert denied.body == b"error: metrics are not served to your address\n"
