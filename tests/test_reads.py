"""Tier 1: the read decision (core.reads), no I/O: which representation,
whether the read takes the paste, which coding, which headers."""

from __future__ import annotations

import itertools

import pytest

from ncpaste.core.http import wants_json
from ncpaste.core.paste import FLAG_BURN, FLAG_OPEN, PasteMeta
from ncpaste.core.reads import (
    ReadRequest,
    Representation,
    decide,
    plan_open_snapshot,
    plan_raw,
    raw_plan_key,
    takes,
)
from ncpaste.core.slicing import parse_log_query

R = Representation
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CSP = "default-src 'none'"


def meta(flags: int = 0, size: int = 100) -> PasteMeta:
    return PasteMeta(1_000, 9_000_000, size, b"\1" * 16, b"\2" * 32, flags)


def request(method: str = "GET", query: str = "", **headers: str | None) -> ReadRequest:
    return ReadRequest(method, parse_log_query(query), **headers)


@pytest.mark.parametrize(
    ("req", "flags", "expected", "encoding"),
    [
        (request(), 0, R.RAW, None),
        (request(accept_encoding="zstd, gzip"), 0, R.RAW, "zstd"),
        (request(accept_encoding="gzip"), 0, R.RAW, "gzip"),
        (request(accept_encoding="zstd", range="bytes=-10"), 0, R.RAW, None),  # ranges: plain bytes
        (request(accept=BROWSER), 0, R.HTML, None),
        (request(query="raw", accept=BROWSER), 0, R.RAW, None),
        (request(query="tail=5", accept=BROWSER), 0, R.SELECTED, None),
        (request(query="grep=x"), FLAG_OPEN, R.SELECTED, None),
        (request(accept=BROWSER), FLAG_OPEN, R.HTML_FOLLOW, None),
        (request(), FLAG_OPEN, R.FOLLOW, None),
        (request("HEAD"), FLAG_OPEN, R.OPEN_SNAPSHOT, None),
        (request(range="bytes=0-9"), FLAG_OPEN, R.OPEN_SNAPSHOT, None),
        (request(query="meta"), 0, R.META, None),
        (request(query="meta", accept=BROWSER), FLAG_OPEN, R.META, None),
        (request("HEAD", query="meta"), FLAG_BURN, R.META, None),
    ],
)
def test_decide_picks_the_representation(req: ReadRequest, flags: int, expected: Representation, encoding: str | None):
    decision = decide(req, meta(flags), content_security_policy=CSP)
    assert decision.representation is expected
    assert decision.encoding == encoding


def test_only_a_get_takes_a_burn_paste():
    assert takes(request("GET"), meta(FLAG_BURN))
    assert not takes(request("HEAD"), meta(FLAG_BURN))
    assert not takes(request("GET"), meta())
    assert not takes(request("GET", query="meta"), meta(FLAG_BURN))  # metadata never burns


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        (None, False),
        ("*/*", False),  # curl
        (BROWSER, False),
        ("text/plain", False),
        ("application/json", True),
        ("application/json, text/plain;q=0.5", True),
        ("text/plain, application/json", False),  # equal: text, as today
        ("application/json;q=0.2, */*;q=0.5", False),
        ("application/json, " + "x" * 2000, False),  # not a script's Accept: plain text
    ],
)
def test_wants_json(accept: str | None, json: bool):
    assert wants_json(accept) is json


def test_selected_lines_are_never_shared_cached_and_not_at_all_when_open_or_burn():
    def cache(flags: int) -> bytes:
        headers = dict(decide(request(query="tail=1"), meta(flags), content_security_policy=CSP).headers)
        return headers[b"cache-control"]

    assert cache(0) == b"private, max-age=60"
    assert cache(FLAG_OPEN) == cache(FLAG_BURN) == b"no-store"


def test_a_snapshot_of_an_open_paste_is_of_what_is_committed_and_never_cached():
    plan = plan_open_snapshot(request(range="bytes=-4"), meta(FLAG_OPEN, size=0), 2_000, committed=10)
    headers = dict(plan.headers)
    assert (plan.status, plan.span) == (206, (6, 10))
    assert headers[b"content-range"] == b"bytes 6-9/10"
    assert headers[b"cache-control"] == b"no-store" and b"etag" not in headers


def test_a_raw_plan_key_names_everything_the_plan_depends_on():
    """Responses of hot pastes are reused under ``raw_plan_key``: two reads
    with the same key must get the same plan, whatever else differs."""
    plans: dict[tuple[object, ...], object] = {}
    requests = [request(m, accept_encoding=ae) for m in ("GET", "HEAD") for ae in (None, "gzip", "zstd")]
    metas = [meta(), meta(size=7), meta(FLAG_BURN)]
    times = [2_000, 2_999, 3_000, 3_001, 8_999_000, 9_000_000]
    for req, m, now, ttl in itertools.product(requests, metas, times, (5, 60)):
        decision = decide(req, m, content_security_policy=CSP)
        size = 0 if decision.encoding is None else 40
        key = raw_plan_key(req, m, now, decision.encoding, size, shared_max_age_s=ttl)
        assert key is not None
        plan = plan_raw(req, m, now, decision, size, shared_max_age_s=ttl)
        assert plans.setdefault(key, plan) == plan, key
    assert len(plans) < len(requests) * len(metas) * len(times) * 2  # keys are shared


def test_ranges_and_revalidations_have_no_raw_plan_key():
    for req in (request(range="bytes=0-1"), request(if_none_match='"x"')):
        assert raw_plan_key(req, meta(), 2_000, None, 0, shared_max_age_s=5) is None
