"""Tier 1: the byte-bounded LRU both caches use."""

from __future__ import annotations

from ncpaste.core.lru import ByteLRU


def lru(max_bytes: int = 10, max_item_bytes: int = 6) -> ByteLRU[bytes]:
    return ByteLRU(max_bytes, max_item_bytes, len)


def test_the_least_recently_used_go_first_when_over_the_byte_bound():
    cache = lru()
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recent
    cache.put("c", b"cccc")  # 12 bytes > 10: b goes
    assert cache.get("b") is None and cache.get("a") == b"aaaa" and cache.get("c") == b"cccc"
    assert cache.bytes == 8 and len(cache) == 2


def test_an_item_over_the_item_bound_is_never_kept_and_replaces_nothing_stale():
    cache = lru()
    cache.put("a", b"old")
    assert cache.put("a", b"x" * 7) is False
    assert cache.get("a") is None and cache.bytes == 0


def test_replacing_and_dropping_keep_the_byte_count_exact():
    cache = lru()
    cache.put("a", b"12345")
    cache.put("a", b"12")
    assert cache.bytes == 2
    cache.drop("a")
    cache.drop("missing")
    assert cache.bytes == 0 and len(cache) == 0
