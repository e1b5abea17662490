"""Tier 1: ``net.metrics``. No sockets: record, render, and read the text back
the way a Prometheus scraper would (prometheus_client's own parser)."""

from __future__ import annotations

import importlib
import math
import os
import pkgutil

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

import ncpaste
from ncpaste.core import errors
from ncpaste.net.metrics import (
    NETCAT_ENDINGS,
    PORTS,
    REJECTION_REASONS,
    REQUEST_BUCKETS_S,
    REQUEST_KINDS,
    SWEEP_BUCKETS_S,
    Metrics,
)

INF = math.inf


class Scrape:
    """One render(), parsed: sample values by name and labels, types by family."""

    def __init__(self, metrics: Metrics) -> None:
        body, self.content_type = metrics.render()
        self.text = body.decode("utf-8")
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(self.text):
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"duplicate series {key}"
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for sample, labels in self.samples if sample == name}

    def buckets(self, name: str, **labels: str) -> dict[float, float]:
        """Cumulative bucket counts by upper bound (``le`` parsed as a float)."""
        found = {}
        for (sample, sample_labels), value in self.samples.items():
            sample_labels = dict(sample_labels)
            le = sample_labels.pop("le", None)
            if sample == f"{name}_bucket" and sample_labels == labels:
                found[float(le)] = value
        return found


def without_created(samples: dict) -> dict:
    """Drop the ``*_created`` timestamp series prometheus_client adds."""
    return {key: value for key, value in samples.items() if not key[0].endswith("_created")}


def all_reasons() -> set[str]:
    """The reason of every PasteError subclass anywhere in ncpaste."""
    # Subclasses are found only once their module is imported: import them all.
    # (Not __main__, which would run the CLI.)
    for module in pkgutil.walk_packages(ncpaste.__path__, "ncpaste."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
    reasons = set()
    pending = [errors.PasteError]
    while pending:
        cls = pending.pop()
        reasons.add(cls.reason)
        pending.extend(cls.__subclasses__())
    return reasons


def test_fresh_metrics_render_known_series_at_zero() -> None:
    scrape = Scrape(Metrics())
    assert scrape.content_type == CONTENT_TYPE_LATEST.encode()
    assert scrape.content_type.startswith(b"text/plain; version=")
    for port in PORTS:
        assert scrape.value("ncpaste_pastes_total", port=port, outcome="created") == 0
        assert scrape.value("ncpaste_pastes_total", port=port, outcome="rejected") == 0
        assert scrape.value("ncpaste_bytes_in_total", port=port) == 0
        assert scrape.value("ncpaste_open_connections", port=port) == 0
        for reason in REJECTION_REASONS:
            assert scrape.value("ncpaste_rejections_total", port=port, reason=reason) == 0
    for how in NETCAT_ENDINGS:
        assert scrape.value("ncpaste_netcat_endings_total", how=how) == 0
    for kind in REQUEST_KINDS:
        assert scrape.value("ncpaste_request_duration_seconds_count", kind=kind) == 0
    for name in (
        "ncpaste_bytes_out_total", "ncpaste_expired_removed_total", "ncpaste_sweep_duration_seconds_count",
        "ncpaste_live_pastes_open", "ncpaste_live_readers",
        "ncpaste_store_pastes", "ncpaste_key_pool_size", "ncpaste_store_disk_bytes",
    ):
        assert scrape.value(name) == 0
    # Nothing is "other" until something unknown is recorded.
    assert "other" not in scrape.text


def test_types_are_what_a_scraper_expects() -> None:
    types = Scrape(Metrics()).types
    for name in (
        "ncpaste_pastes", "ncpaste_rejections", "ncpaste_bytes_in", "ncpaste_bytes_out",
        "ncpaste_netcat_endings", "ncpaste_expired_removed",
    ):
        assert types[name] == "counter", name
    for name in ("ncpaste_request_duration_seconds", "ncpaste_sweep_duration_seconds"):
        assert types[name] == "histogram", name
    for name in (
        "ncpaste_open_connections", "ncpaste_live_pastes_open", "ncpaste_live_readers",
        "ncpaste_store_pastes", "ncpaste_key_pool_size", "ncpaste_store_disk_bytes",
    ):
        assert types[name] == "gauge", name


def test_paste_counters_and_bytes() -> None:
    metrics = Metrics()
    metrics.paste_created("tcp", 100)
    metrics.paste_created("tcp", 23)
    metrics.paste_created("http", 4096)
    metrics.paste_created("live", 0)
    metrics.paste_rejected("tcp", "too_large")
    metrics.paste_rejected("tcp", "too_large")
    metrics.paste_rejected("http", "not_text")
    metrics.paste_rejected("http", "rate_limited")
    metrics.paste_rejected("live", "alias_taken")
    metrics.netcat_ended("fin")
    metrics.netcat_ended("fin")
    metrics.netcat_ended("idle")
    metrics.bytes_out(1000)
    metrics.bytes_out(24)
    metrics.expired_removed(7)
    metrics.expired_removed(0)
    metrics.expired_removed(5)

    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_pastes_total", port="tcp", outcome="created") == 2
    assert scrape.value("ncpaste_pastes_total", port="http", outcome="created") == 1
    assert scrape.value("ncpaste_pastes_total", port="live", outcome="created") == 1
    assert scrape.value("ncpaste_pastes_total", port="tcp", outcome="rejected") == 2
    assert scrape.value("ncpaste_pastes_total", port="http", outcome="rejected") == 2
    assert scrape.value("ncpaste_pastes_total", port="live", outcome="rejected") == 1
    assert scrape.value("ncpaste_bytes_in_total", port="tcp") == 123
    assert scrape.value("ncpaste_bytes_in_total", port="http") == 4096
    assert scrape.value("ncpaste_bytes_in_total", port="live") == 0
    assert scrape.value("ncpaste_rejections_total", port="tcp", reason="too_large") == 2
    assert scrape.value("ncpaste_rejections_total", port="http", reason="not_text") == 1
    assert scrape.value("ncpaste_rejections_total", port="http", reason="rate_limited") == 1
    assert scrape.value("ncpaste_rejections_total", port="live", reason="alias_taken") == 1
    assert scrape.value("ncpaste_rejections_total", port="http", reason="too_large") == 0
    assert scrape.value("ncpaste_netcat_endings_total", how="fin") == 2
    assert scrape.value("ncpaste_netcat_endings_total", how="idle") == 1
    assert scrape.value("ncpaste_bytes_out_total") == 1024
    assert scrape.value("ncpaste_expired_removed_total") == 12


def test_request_histogram_counts_sums_and_cumulative_buckets() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.0005, 0.003, 0.2, 12.0):
        metrics.observe_request("create", seconds)
    metrics.observe_request("read", 0.0001)
    metrics.observe_request("read", 0.0001)

    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_request_duration_seconds_count", kind="create") == 5
    assert scrape.value("ncpaste_request_duration_seconds_sum", kind="create") == pytest.approx(12.2039)
    assert scrape.value("ncpaste_request_duration_seconds_count", kind="read") == 2
    assert scrape.value("ncpaste_request_duration_seconds_sum", kind="read") == pytest.approx(0.0002)

    create = scrape.buckets("ncpaste_request_duration_seconds", kind="create")
    assert set(create) == set(REQUEST_BUCKETS_S) | {INF}
    # Buckets are cumulative and "le" is inclusive (0.0005 lands in le=0.0005).
    assert create[0.0005] == 2
    assert create[0.001] == 2
    assert create[0.0025] == 2
    assert create[0.005] == 3
    assert create[0.1] == 3
    assert create[0.25] == 4
    assert create[10.0] == 4
    assert create[INF] == 5
    read = scrape.buckets("ncpaste_request_duration_seconds", kind="read")
    assert all(count == 2 for count in read.values())


def test_request_buckets_span_half_a_millisecond_to_ten_seconds() -> None:
    assert REQUEST_BUCKETS_S[0] == 0.0005
    assert REQUEST_BUCKETS_S[-1] == 10.0
    assert list(REQUEST_BUCKETS_S) == sorted(set(REQUEST_BUCKETS_S))
    # No gap wider than a factor of 2.5 between neighbours.
    assert all(high / low <= 2.5 for low, high in zip(REQUEST_BUCKETS_S, REQUEST_BUCKETS_S[1:]))


def test_sweep_histogram() -> None:
    metrics = Metrics()
    metrics.observe_sweep(0.002)
    metrics.observe_sweep(3.0)
    metrics.observe_sweep(120.0)

    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_sweep_duration_seconds_count") == 3
    assert scrape.value("ncpaste_sweep_duration_seconds_sum") == pytest.approx(123.002)
    buckets = scrape.buckets("ncpaste_sweep_duration_seconds")
    assert set(buckets) == set(SWEEP_BUCKETS_S) | {INF}
    assert buckets[0.001] == 0
    assert buckets[0.005] == 1
    assert buckets[5.0] == 2
    assert buckets[60.0] == 2
    assert buckets[INF] == 3


def test_gauges_go_up_and_down() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.connection_opened("tcp")
    metrics.connection_opened("http")
    metrics.connection_opened("http")
    metrics.connection_closed("tcp")
    metrics.connection_closed("http")
    metrics.connection_closed("http")
    metrics.live_opened()
    metrics.live_opened()
    metrics.live_closed()
    metrics.readers_changed(+5)
    metrics.readers_changed(-2)
    metrics.set_store_stats(pastes=10, pool_keys=500, disk_bytes=1 << 20)
    metrics.set_store_stats(pastes=8, pool_keys=499, disk_bytes=3 << 20)

    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_open_connections", port="tcp") == 2
    assert scrape.value("ncpaste_open_connections", port="http") == 0
    assert scrape.value("ncpaste_open_connections", port="live") == 0
    assert scrape.value("ncpaste_live_pastes_open") == 1
    assert scrape.value("ncpaste_live_readers") == 3
    # Store figures are the last ones set, not a sum.
    assert scrape.value("ncpaste_store_pastes") == 8
    assert scrape.value("ncpaste_key_pool_size") == 499
    assert scrape.value("ncpaste_store_disk_bytes") == 3 << 20

    metrics.readers_changed(-3)
    metrics.live_closed()
    metrics.connection_closed("tcp")
    metrics.connection_closed("tcp")
    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_live_readers") == 0
    assert scrape.value("ncpaste_live_pastes_open") == 0
    assert scrape.value("ncpaste_open_connections", port="tcp") == 0


def test_unknown_label_values_become_other() -> None:
    metrics = Metrics()
    metrics.paste_created("gopher", 10)
    metrics.paste_rejected("tcp", "no_such_reason")
    metrics.paste_rejected("smtp", "too_large")
    metrics.paste_rejected("", "")
    metrics.netcat_ended("rst")
    metrics.observe_request("delete", 0.01)
    metrics.connection_opened("udp")
    metrics.connection_opened("udp")
    metrics.connection_closed("ftp")
    # Hostile text: many distinct values, one series.
    for i in range(1000):
        metrics.paste_rejected(f"port-{i}", f'reason "{i}"\n')

    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_pastes_total", port="other", outcome="created") == 1
    assert scrape.value("ncpaste_bytes_in_total", port="other") == 10
    assert scrape.value("ncpaste_rejections_total", port="tcp", reason="other") == 1
    assert scrape.value("ncpaste_rejections_total", port="other", reason="too_large") == 1
    assert scrape.value("ncpaste_rejections_total", port="other", reason="other") == 1001
    assert scrape.value("ncpaste_pastes_total", port="other", outcome="rejected") == 1002
    assert scrape.value("ncpaste_pastes_total", port="tcp", outcome="rejected") == 1
    assert scrape.value("ncpaste_netcat_endings_total", how="other") == 1
    assert scrape.value("ncpaste_request_duration_seconds_count", kind="other") == 1
    assert scrape.value("ncpaste_open_connections", port="other") == 1

    # Every label value on every series is from its fixed set or "other".
    other = {"other"}
    for name in ("ncpaste_pastes_total", "ncpaste_bytes_in_total", "ncpaste_open_connections"):
        assert scrape.label_values(name, "port") <= set(PORTS) | other
    assert scrape.label_values("ncpaste_rejections_total", "port") <= set(PORTS) | other
    assert scrape.label_values("ncpaste_rejections_total", "reason") <= set(REJECTION_REASONS) | other
    assert scrape.label_values("ncpaste_netcat_endings_total", "how") <= set(NETCAT_ENDINGS) | other
    assert scrape.label_values("ncpaste_request_duration_seconds_count", "kind") <= set(REQUEST_KINDS) | other
    assert scrape.label_values("ncpaste_pastes_total", "outcome") == {"created", "rejected"}
    # Bounded series count, however many distinct values came in.
    rejection_series = [s for s, _ in scrape.samples if s == "ncpaste_rejections_total"]
    # The known grid plus exactly the three "other" combinations recorded above.
    assert len(rejection_series) == len(PORTS) * len(REJECTION_REASONS) + 3


def test_every_paste_error_reason_is_known() -> None:
    """A new PasteError reason must be added to REJECTION_REASONS, or it would
    only ever be counted as "other"."""
    assert all_reasons() == set(REJECTION_REASONS)
    assert len(REJECTION_REASONS) == len(set(REJECTION_REASONS))


@pytest.mark.parametrize("reason", ["too_large", "not_text", "rate_limited", "alias_taken",
                                    "storage_full", "empty", "bad_option", "denied"])
def test_documented_reasons_are_their_own_series(reason: str) -> None:
    metrics = Metrics()
    metrics.paste_rejected("http", reason)
    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_rejections_total", port="http", reason=reason) == 1
    assert not scrape.has("ncpaste_rejections_total", port="http", reason="other")


def test_bad_numbers_never_raise_or_move_counters_backwards() -> None:
    metrics = Metrics()
    metrics.paste_created("tcp", -5)
    metrics.bytes_out(-1)
    metrics.bytes_out(0)
    metrics.expired_removed(-3)
    metrics.observe_request("read", -0.5)
    metrics.observe_sweep(-1.0)

    scrape = Scrape(metrics)
    assert scrape.value("ncpaste_pastes_total", port="tcp", outcome="created") == 1
    assert scrape.value("ncpaste_bytes_in_total", port="tcp") == 0
    assert scrape.value("ncpaste_bytes_out_total") == 0
    assert scrape.value("ncpaste_expired_removed_total") == 0
    # A negative duration (a bug, or a clock that is not monotonic) counts as 0.
    assert scrape.value("ncpaste_request_duration_seconds_count", kind="read") == 1
    assert scrape.value("ncpaste_request_duration_seconds_sum", kind="read") == 0
    assert scrape.value("ncpaste_sweep_duration_seconds_sum") == 0


def test_two_instances_share_nothing() -> None:
    first, second = Metrics(), Metrics()
    first.paste_created("tcp", 50)
    first.connection_opened("http")
    first.observe_request("create", 0.01)
    first.set_store_stats(pastes=3, pool_keys=4, disk_bytes=5)
    first.paste_rejected("nope", "nope")

    untouched = Scrape(second)
    # Same series and values as a brand-new instance (creation timestamps aside).
    assert without_created(untouched.samples) == without_created(Scrape(Metrics()).samples)
    assert untouched.value("ncpaste_pastes_total", port="tcp", outcome="created") == 0
    assert untouched.value("ncpaste_bytes_in_total", port="tcp") == 0
    assert untouched.value("ncpaste_open_connections", port="http") == 0
    assert untouched.value("ncpaste_request_duration_seconds_count", kind="create") == 0
    assert untouched.value("ncpaste_store_pastes") == 0
    assert "other" not in untouched.text

    second.paste_created("tcp", 7)
    assert Scrape(first).value("ncpaste_bytes_in_total", port="tcp") == 50
    assert Scrape(second).value("ncpaste_bytes_in_total", port="tcp") == 7


def test_metrics_stay_out_of_the_global_default_registry() -> None:
    from prometheus_client import REGISTRY, generate_latest

    Metrics().paste_created("tcp", 1)
    assert b"ncpaste_" not in generate_latest(REGISTRY)


def test_batched_observations_reach_other_workers_within_the_flush_interval(tmp_path) -> None:
    """With --workers, a scrape is answered by any worker from the shared
    files: a worker's batched reads must get there by themselves (run_flusher),
    not only when that worker renders. prometheus_client reads its
    multiprocess directory at import, hence a process of its own."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent('''
        import trio
        from prometheus_client import CollectorRegistry, multiprocess
        from ncpaste.net.metrics import FLUSH_INTERVAL_S, Metrics

        def seen(directory):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            values = {s.name: s.value for f in registry.collect() for s in f.samples if not s.labels
                      or s.labels == {"kind": "read"}}
            return values.get("ncpaste_request_duration_seconds_count"), values.get("ncpaste_bytes_out_total")

        async def main(directory):
            metrics = Metrics()
            for _ in range(3):
                metrics.observe_request("read", 0.001)
                metrics.bytes_out(100)
            before = seen(directory)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(metrics.run_flusher)
                await trio.sleep(FLUSH_INTERVAL_S * 1.5)
                nursery.cancel_scope.cancel()
            print(before, seen(directory))

        import os
        trio.run(main, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    ''')
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(0.0,", "0.0)", "(3.0,", "300.0)"], out.stdout
