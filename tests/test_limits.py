"""Tier 1: per-client abuse controls (``core.limits``). No sockets, no clock:
every time is an injected float of monotonic seconds."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncpaste.core.errors import PasteError
from ncpaste.core.limits import (
    CONNECTIONS_RETRY_AFTER_S,
    DAY_S,
    AccessList,
    ClientLimiter,
    LimitSettings,
    Refused,
    client_key,
)

# Property tests run in milliseconds each; the deadline only adds flakiness
# on a loaded CI machine.
PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

T0 = 1_000.0  # an arbitrary monotonic start: limits must not assume time starts at 0
KIB = 1024
GIB = 1024**3


def refusal(call, *args) -> Refused:
    with pytest.raises(Refused) as info:
        call(*args)
    return info.value


# -- client_key ----------------------------------------------------------------


def test_ipv4_key_is_the_address() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") != client_key("192.0.2.8")


def test_two_addresses_in_one_64_share_a_key() -> None:
    a = client_key("2001:db8:1:2::1")
    b = client_key("2001:db8:1:2:ffff:eeee:dddd:cccc")
    assert a == b == "2001:db8:1:2::/64"


def test_neighbouring_64s_differ() -> None:
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"


def test_v4_mapped_is_the_ipv4_client() -> None:
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:c000:207") == client_key("192.0.2.7")
    # The prefix applies to IPv6 only: a mapped address is never grouped.
    assert client_key("::ffff:192.0.2.7", v6_prefix=0) == "192.0.2.7"


def test_prefix_48_groups_a_site() -> None:
    a = client_key("2001:db8:abcd:1::1", v6_prefix=48)
    b = client_key("2001:db8:abcd:ffff::2", v6_prefix=48)
    assert a == b == "2001:db8:abcd::/48"
    assert client_key("2001:db8:abce::1", v6_prefix=48) != a


def test_prefix_128_is_per_address() -> None:
    assert client_key("2001:db8::1", v6_prefix=128) == "2001:db8::1/128"
    assert client_key("2001:db8::1", v6_prefix=128) != client_key("2001:db8::2", v6_prefix=128)


def test_zone_is_not_part_of_the_client() -> None:
    assert client_key("fe80::1%eth0") == client_key("fe80::2%eth1") == "fe80::/64"


@pytest.mark.parametrize(
    "garbage",
    ["", "1.2.3", "256.0.0.1", "example.com", "192.0.2.0/24", "2001:db8::g", "::1::2", "[::1]", "1.2.3.4:80"],
)
def test_client_key_refuses_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        client_key(garbage)


@pytest.mark.parametrize("prefix", [-1, 129])
def test_client_key_refuses_a_bad_prefix(prefix: int) -> None:
    with pytest.raises(ValueError, match="prefix"):
        client_key("2001:db8::1", v6_prefix=prefix)


def test_addresses_of_one_64_share_one_budget() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=2))
    for ip in ("2001:db8:1:2::1", "2001:db8:1:2::2"):
        limiter.charge(client_key(ip), 10, T0)
    assert refusal(limiter.charge, client_key("2001:db8:1:2::3"), 10, T0).reason == "pastes"
    limiter.charge(client_key("2001:db8:1:3::1"), 10, T0)  # the next /64 is someone else


# -- settings and the exception ------------------------------------------------


def test_defaults() -> None:
    defaults = LimitSettings()
    assert defaults.pastes_per_minute == 30
    assert defaults.bytes_per_day == GIB
    assert defaults.connections_per_client == 32
    assert defaults.max_clients_tracked == 100_000
    assert defaults.enabled is True


@pytest.mark.parametrize(
    "field", ["pastes_per_minute", "bytes_per_day", "connections_per_client", "max_clients_tracked"]
)
def test_settings_refuse_zero(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LimitSettings(**{field: 0})


def test_refused_is_not_a_paste_error_and_carries_what_the_edge_needs() -> None:
    refused = Refused("pastes", 0.2)
    assert not isinstance(refused, PasteError)
    assert refused.reason == "pastes"
    assert refused.retry_after_s == 1 and isinstance(refused.retry_after_s, int)
    assert Refused("bytes", 2.01).retry_after_s == 3
    with pytest.raises(ValueError):
        Refused("reasons", 1)


# -- paste bucket --------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 7, 30, 60, 120])
def test_burst_of_exactly_pastes_per_minute_then_refused(rate: int) -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=rate))
    for _ in range(rate):
        limiter.check_paste("c", T0)
        limiter.charge("c", 100, T0)
    refused = refusal(limiter.check_paste, "c", T0)
    assert refused.reason == "pastes"
    assert refused.retry_after_s == max(1, math.ceil(60 / rate))
    assert refusal(limiter.charge, "c", 100, T0).reason == "pastes"
    # Waiting exactly as long as advertised is enough for one more paste...
    later = T0 + refused.retry_after_s
    limiter.check_paste("c", later)
    limiter.charge("c", 100, later)
    if 60 / rate >= 1:  # ...and only one, when the hint is not rounded up past two tokens
        assert refusal(limiter.check_paste, "c", later).reason == "pastes"


def test_refused_just_before_the_token_arrives() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=30))
    for _ in range(30):
        limiter.charge("c", 1, T0)
    refused = refusal(limiter.check_paste, "c", T0 + 1.9)
    assert refused.retry_after_s == 1  # 0.1 s left, rounded up to a whole second
    limiter.check_paste("c", T0 + 2.0)


def test_check_paste_consumes_nothing() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=5))
    for _ in range(100):
        limiter.check_paste("c", T0)
    for _ in range(5):
        limiter.charge("c", 1, T0)
    refusal(limiter.charge, "c", 1, T0)


def test_sustained_rate_is_pastes_per_minute() -> None:
    """A client retrying the moment it is told to gets the burst plus the rate, no more."""
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=10))
    now, stored = T0, 0
    while now <= T0 + 600:  # ten minutes, both ends included
        try:
            limiter.charge("c", 1, now)
            stored += 1
        except Refused as refused:
            now += refused.retry_after_s
    assert stored == 10 + 600 // 6  # the burst, then one every 6 s


def test_clients_have_separate_buckets() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=1))
    limiter.charge("a", 1, T0)
    refusal(limiter.charge, "a", 1, T0)
    limiter.charge("b", 1, T0)


def test_a_full_bucket_does_not_overflow_after_a_long_idle() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=3))
    limiter.charge("c", 1, T0)
    later = T0 + 10 * DAY_S
    for _ in range(3):
        limiter.charge("c", 1, later)
    refusal(limiter.charge, "c", 1, later)


def test_time_going_backwards_earns_nothing_and_raises_nothing() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=1))
    limiter.charge("c", 1, T0 + 100)
    assert refusal(limiter.check_paste, "c", T0).reason == "pastes"
    assert refusal(limiter.check_paste, "c", T0 + 100).retry_after_s == 60


# -- byte budget ---------------------------------------------------------------


def test_byte_budget_refills_over_a_day() -> None:
    limiter = ClientLimiter(LimitSettings(bytes_per_day=86_400 * KIB, pastes_per_minute=1000))
    limiter.charge("c", 86_000 * KIB, T0)
    limiter.charge("c", 400 * KIB, T0)  # exactly the rest
    refused = refusal(limiter.charge, "c", 100 * KIB, T0)
    assert refused.reason == "bytes"
    assert refused.retry_after_s == 100  # the budget refills 1 KiB a second
    refusal(limiter.charge, "c", 100 * KIB, T0 + 99)
    limiter.charge("c", 100 * KIB, T0 + 100)


def test_default_budget_is_one_gib_a_day() -> None:
    limiter = ClientLimiter(LimitSettings())
    for second in range(16):
        limiter.charge("c", 64 * 1024 * 1024, T0 + second)
    refused = refusal(limiter.charge, "c", 1024 * 1024, T0 + 16)
    assert refused.reason == "bytes"
    assert 60 <= refused.retry_after_s <= 90  # 1 MiB at 1 GiB/day is ~82 s, minus what 16 s earned


def test_a_paste_bigger_than_the_whole_budget_waits_a_full_day() -> None:
    limiter = ClientLimiter(LimitSettings(bytes_per_day=1000))
    refused = refusal(limiter.charge, "fresh", 1001, T0)
    assert (refused.reason, refused.retry_after_s) == ("bytes", DAY_S)
    limiter.charge("fresh", 1000, T0)  # nothing was consumed by the refusal


@PROPERTY
@given(
    budget=st.integers(1, 4 * GIB),
    spent_share=st.floats(0, 1),
    wanted_share=st.floats(0, 1),
    start=st.floats(0, 1e7),
)
def test_the_advertised_byte_wait_is_enough_and_at_most_a_day(
    budget: int, spent_share: float, wanted_share: float, start: float
) -> None:
    limiter = ClientLimiter(LimitSettings(bytes_per_day=budget, pastes_per_minute=1000))
    limiter.charge("c", int(budget * spent_share), start)
    wanted = max(1, int(budget * wanted_share))
    try:
        limiter.charge("c", wanted, start)
    except Refused as refused:
        assert refused.reason == "bytes"
        assert 1 <= refused.retry_after_s <= DAY_S
        limiter.charge("c", wanted, start + refused.retry_after_s)


@PROPERTY
@given(rate=st.integers(1, 10_000), start=st.floats(0, 1e7))
def test_the_advertised_paste_wait_is_enough_and_at_most_a_minute(rate: int, start: float) -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=rate))
    for _ in range(rate):
        limiter.charge("c", 0, start)
    refused = refusal(limiter.check_paste, "c", start)
    assert refused.retry_after_s == max(1, math.ceil(60 / rate))
    limiter.charge("c", 0, start + refused.retry_after_s)


def test_a_whole_budget_after_a_whole_budget_waits_exactly_a_day() -> None:
    limiter = ClientLimiter(LimitSettings(bytes_per_day=85))  # 85 / (85 / 86400) rounds above 86400
    limiter.charge("c", 85, T0)
    refused = refusal(limiter.charge, "c", 85, T0)
    assert (refused.reason, refused.retry_after_s) == ("bytes", DAY_S)
    limiter.charge("c", 85, T0 + DAY_S)


# -- charge is all or nothing --------------------------------------------------


def test_short_of_pastes_consumes_no_bytes() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=1, bytes_per_day=1000))
    limiter.charge("c", 100, T0)
    for _ in range(5):
        assert refusal(limiter.charge, "c", 100, T0 + 1).reason == "pastes"
    limiter.charge("c", 900, T0 + 60)  # all 900 bytes still there (plus ~0.7 refilled)


def test_short_of_bytes_consumes_no_paste() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=3, bytes_per_day=1000))
    limiter.charge("c", 1000, T0)
    for _ in range(5):
        assert refusal(limiter.charge, "c", 500, T0).reason == "bytes"
    limiter.charge("c", 0, T0)
    limiter.charge("c", 0, T0)  # pastes two and three: the refusals took none
    assert refusal(limiter.charge, "c", 0, T0).reason == "pastes"


def test_both_short_names_the_longer_wait() -> None:
    limiter = ClientLimiter(LimitSettings(pastes_per_minute=1, bytes_per_day=DAY_S))  # 1 byte a second
    limiter.charge("c", DAY_S, T0)
    refused = refusal(limiter.charge, "c", 10, T0)
    assert (refused.reason, refused.retry_after_s) == ("pastes", 60)
    refused = refusal(limiter.charge, "c", 100, T0)
    assert (refused.reason, refused.retry_after_s) == ("bytes", 100)


def test_negative_size_is_a_bug() -> None:
    with pytest.raises(ValueError):
        ClientLimiter(LimitSettings()).charge("c", -1, T0)


# -- connections ---------------------------------------------------------------


def test_connections_count_up_to_the_cap() -> None:
    limiter = ClientLimiter(LimitSettings(connections_per_client=3))
    for _ in range(3):
        limiter.connect("c", T0)
    refused = refusal(limiter.connect, "c", T0)
    assert (refused.reason, refused.retry_after_s) == ("connections", CONNECTIONS_RETRY_AFTER_S)
    limiter.connect("other", T0)
    limiter.disconnect("c", T0 + 1)
    limiter.connect("c", T0 + 1)
    refusal(limiter.connect, "c", T0 + 1)


def test_extra_disconnects_never_count_below_zero() -> None:
    limiter = ClientLimiter(LimitSettings(connections_per_client=2))
    limiter.disconnect("never-seen", T0)
    limiter.connect("c", T0)
    for _ in range(5):
        limiter.disconnect("c", T0)
    limiter.connect("c", T0)
    limiter.connect("c", T0)
    refusal(limiter.connect, "c", T0)  # a negative count would have let a third in


def test_a_refused_connect_is_not_counted() -> None:
    limiter = ClientLimiter(LimitSettings(connections_per_client=1))
    limiter.connect("c", T0)
    for _ in range(5):
        refusal(limiter.connect, "c", T0)
    limiter.disconnect("c", T0)
    limiter.connect("c", T0)


# -- memory bound --------------------------------------------------------------


def test_a_flood_of_a_million_clients_stays_within_the_bound() -> None:
    bound = 1000
    limiter = ClientLimiter(LimitSettings(max_clients_tracked=bound, pastes_per_minute=1, connections_per_client=2))
    held = [f"held-{n}" for n in range(10)]
    for key in held:
        limiter.connect(key, T0)
        limiter.charge(key, 1, T0)  # its only paste this minute
    for n in range(1_000_000):
        limiter.charge(f"flood-{n}", 1, T0 + n * 1e-6)
        if n % 100_000 == 0:
            assert limiter.tracked() <= bound
    assert limiter.tracked() == bound
    now = T0 + 1.5
    for key in held:  # still remembered: spent bucket, one open connection
        assert refusal(limiter.check_paste, key, now).reason == "pastes"
        limiter.connect(key, now)
        assert refusal(limiter.connect, key, now).reason == "connections"
    # The flood's oldest were forgotten: a fresh bucket again.
    limiter.charge("flood-0", 1, now)


def test_least_recently_seen_is_forgotten_first() -> None:
    limiter = ClientLimiter(LimitSettings(max_clients_tracked=3, pastes_per_minute=1))
    for key in ("a", "b", "c"):
        limiter.charge(key, 1, T0)
    refusal(limiter.check_paste, "a", T0)  # "a" seen again
    limiter.charge("d", 1, T0)  # needs room: "b" is now the oldest
    assert limiter.tracked() == 3
    limiter.charge("b", 1, T0)  # forgotten, so a fresh bucket (and "c" goes)
    refusal(limiter.charge, "a", 1, T0)
    refusal(limiter.charge, "d", 1, T0)


def test_check_paste_of_an_unknown_client_remembers_nothing() -> None:
    limiter = ClientLimiter(LimitSettings(max_clients_tracked=2))
    for n in range(100):
        limiter.check_paste(f"c{n}", T0)
    assert limiter.tracked() == 0


def test_when_every_slot_holds_a_connection_a_new_client_is_refused() -> None:
    limiter = ClientLimiter(LimitSettings(max_clients_tracked=3))
    for key in ("a", "b", "c"):
        limiter.connect(key, T0)
    refused = refusal(limiter.connect, "d", T0)
    assert refused.reason == "connections"
    assert refusal(limiter.charge, "d", 1, T0).reason == "connections"
    assert limiter.tracked() == 3
    limiter.connect("a", T0)  # known clients still get in
    limiter.disconnect("b", T0)
    limiter.connect("d", T0)  # "b" is idle now, so it makes room
    assert limiter.tracked() == 3
    refusal(limiter.connect, "e", T0)


def test_after_a_lower_bound_each_client_going_idle_gives_a_slot_back() -> None:
    base = LimitSettings(max_clients_tracked=3)
    limiter = ClientLimiter(base)
    for key in ("a", "b", "c"):
        limiter.connect(key, T0)
    limiter.replace_settings(replace(base, max_clients_tracked=1))
    assert limiter.tracked() == 3  # connected clients are never forgotten
    limiter.disconnect("a", T0)
    limiter.disconnect("b", T0)
    assert limiter.tracked() == 1
    refusal(limiter.connect, "d", T0)  # the one slot is "c"'s, still connected
    limiter.disconnect("c", T0)
    limiter.connect("d", T0)
    assert limiter.tracked() == 1


def test_disconnected_clients_become_evictable_again() -> None:
    limiter = ClientLimiter(LimitSettings(max_clients_tracked=2))
    limiter.connect("a", T0)
    limiter.connect("b", T0)
    limiter.disconnect("a", T0)
    limiter.disconnect("b", T0)
    for n in range(10):
        limiter.connect(f"n{n}", T0)
        limiter.disconnect(f"n{n}", T0)
    assert limiter.tracked() == 2


# -- switched off --------------------------------------------------------------


def test_disabled_never_refuses() -> None:
    limiter = ClientLimiter(
        LimitSettings(pastes_per_minute=1, bytes_per_day=1, connections_per_client=1, max_clients_tracked=1, enabled=False)
    )
    for n in range(1000):
        limiter.connect("c", T0)
        limiter.connect(f"c{n}", T0)
        limiter.check_paste("c", T0)
        limiter.charge("c", 10 * GIB, T0)
        limiter.disconnect("x", T0)
    assert limiter.tracked() == 0


# -- reload --------------------------------------------------------------------


def test_reload_keeps_state() -> None:
    base = LimitSettings(pastes_per_minute=2, connections_per_client=2)
    limiter = ClientLimiter(base)
    limiter.charge("c", 1, T0)
    limiter.charge("c", 1, T0)
    limiter.connect("c", T0)
    limiter.connect("c", T0)
    limiter.replace_settings(replace(base, bytes_per_day=2 * GIB))
    assert refusal(limiter.check_paste, "c", T0).reason == "pastes"
    assert refusal(limiter.connect, "c", T0).reason == "connections"


def test_reload_applies_new_rates() -> None:
    base = LimitSettings(pastes_per_minute=1)
    limiter = ClientLimiter(base)
    limiter.charge("c", 1, T0)
    assert refusal(limiter.check_paste, "c", T0).retry_after_s == 60
    limiter.replace_settings(replace(base, pastes_per_minute=60))
    assert refusal(limiter.check_paste, "c", T0).retry_after_s == 1  # a paste a second now
    limiter.charge("c", 1, T0 + 1)


def test_reload_lower_caps() -> None:
    base = LimitSettings(connections_per_client=5, pastes_per_minute=10)
    limiter = ClientLimiter(base)
    for _ in range(4):
        limiter.connect("c", T0)
    limiter.replace_settings(replace(base, connections_per_client=3, pastes_per_minute=2))
    refusal(limiter.connect, "c", T0)  # 4 held, cap 3: no more until below it
    limiter.disconnect("c", T0)
    limiter.disconnect("c", T0)
    limiter.connect("c", T0)
    # The bucket is capped to the new, smaller burst.
    limiter.charge("c", 1, T0)
    limiter.charge("c", 1, T0)
    refusal(limiter.charge, "c", 1, T0)


def test_reload_lower_bound_forgets_the_oldest_idle_clients() -> None:
    base = LimitSettings(max_clients_tracked=10)
    limiter = ClientLimiter(base)
    limiter.connect("held", T0)
    for n in range(9):
        limiter.charge(f"idle{n}", 1, T0)
    limiter.replace_settings(replace(base, max_clients_tracked=3))
    assert limiter.tracked() == 3
    limiter.connect("held", T0)  # still counted: one open connection, now two


def test_switching_off_and_on_starts_afresh() -> None:
    base = LimitSettings(connections_per_client=1)
    limiter = ClientLimiter(base)
    limiter.connect("c", T0)
    limiter.replace_settings(replace(base, enabled=False))
    limiter.disconnect("c", T0)  # unseen while off
    limiter.replace_settings(base)
    limiter.connect("c", T0)  # a stale count of 1 would refuse this forever
    assert limiter.tracked() == 1


# -- access lists --------------------------------------------------------------


def test_empty_lists_allow_everyone() -> None:
    acl = AccessList()
    assert acl.permits("192.0.2.1") and acl.permits("2001:db8::1") and acl.permits("::ffff:10.0.0.1")


def test_deny_wins_over_allow() -> None:
    acl = AccessList(allow=["10.0.0.0/8"], deny=["10.1.0.0/16", "10.2.3.4"])
    assert acl.permits("10.0.0.1")
    assert not acl.permits("10.1.2.3")
    assert not acl.permits("10.2.3.4")
    assert acl.permits("10.2.3.5")


def test_a_non_empty_allow_list_allows_only_its_members() -> None:
    acl = AccessList(allow=["192.0.2.0/24", "2001:db8::/32"])
    assert acl.permits("192.0.2.200")
    assert acl.permits("2001:db8:ffff::1")
    assert not acl.permits("198.51.100.1")
    assert not acl.permits("2001:db9::1")


def test_deny_only_allows_the_rest() -> None:
    acl = AccessList(deny=["2001:db8:bad::/48"])
    assert not acl.permits("2001:db8:bad:1::1")
    assert acl.permits("2001:db8:600d::1")
    assert acl.permits("203.0.113.9")


def test_v4_mapped_clients_match_ipv4_entries() -> None:
    acl = AccessList(allow=["192.0.2.0/24"], deny=["192.0.2.66"])
    assert acl.permits("::ffff:192.0.2.1")
    assert not acl.permits("::ffff:192.0.2.66")
    assert not acl.permits("::ffff:198.51.100.1")


def test_v4_mapped_entries_match_ipv4_clients() -> None:
    acl = AccessList(deny=["::ffff:192.0.2.0/120"])
    assert not acl.permits("192.0.2.5")
    assert acl.permits("192.0.3.5")


def test_many_entries_of_many_lengths() -> None:
    deny = [f"10.{n}.0.0/16" for n in range(0, 256, 2)] + [f"172.16.{n}.{n}" for n in range(256)]
    acl = AccessList(deny=deny)
    assert not acl.permits("10.4.9.9") and acl.permits("10.5.9.9")
    assert not acl.permits("172.16.7.7") and acl.permits("172.16.7.8")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "banana", "10.0.0.1/8", ""])
def test_bad_entries_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        AccessList(allow=["10.0.0.0/8", bad])


def test_host_bits_set_suggests_the_network() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/8"):
        AccessList(deny=["10.0.0.1/8"])


def test_one_string_is_not_a_list() -> None:
    with pytest.raises(TypeError):
        AccessList(allow="10.0.0.0/8")  # type: ignore[arg-type]


def test_permits_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        AccessList().permits("not-an-ip")


ACL_FILE = """\
# office and CI
allow 192.0.2.0/24
allow 2001:db8::/32   # v6 office

deny 192.0.2.13
   deny   2001:db8:bad::/48
"""


def test_file_format() -> None:
    acl = AccessList.from_file_text(ACL_FILE)
    assert acl.allow_entries == ("192.0.2.0/24", "2001:db8::/32")
    assert acl.deny_entries == ("192.0.2.13", "2001:db8:bad::/48")
    assert acl.permits("192.0.2.1")
    assert not acl.permits("192.0.2.13")
    assert not acl.permits("2001:db8:bad::1")
    assert acl.permits("2001:db8:600d::1")
    assert not acl.permits("198.51.100.1")


def test_an_empty_file_allows_everyone() -> None:
    assert AccessList.from_file_text("# nothing yet\n\n").permits("198.51.100.1")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("permit 10.0.0.0/8", "expected 'allow CIDR'"),
        ("allow", "expected 'allow CIDR'"),
        ("allow 10.0.0.0/8 10.1.0.0/16", "expected 'allow CIDR'"),
        ("ALLOW 10.0.0.0/8", "expected 'allow CIDR'"),
        ("deny 10.0.0.0/40", "10.0.0.0/40"),
        ("deny 10.0.0.1/8", "host bits"),
        ("allow example.com", "example.com"),
    ],
)
def test_file_errors_name_the_line(line: str, needle: str) -> None:
    text = "# header\nallow 10.0.0.0/8\n\n" + line + "\nallow 192.0.2.0/24\n"
    with pytest.raises(ValueError) as info:
        AccessList.from_file_text(text)
    assert str(info.value).startswith("line 4: ")
    assert needle in str(info.value)


# -- property: any sequence of calls -------------------------------------------

KEYS = ["a", "b", "c", "d", "e"]

small_settings = st.builds(
    LimitSettings,
    pastes_per_minute=st.integers(1, 5),
    bytes_per_day=st.integers(1, 2000),
    connections_per_client=st.integers(1, 3),
    max_clients_tracked=st.integers(1, 6),
    enabled=st.booleans(),
)
steps = st.sampled_from([0.0, 0.0, 0.0005, 0.001, 0.3, 1.0, 2.0, 12.5, 59.0, 3600.0, 86_400.0])
operations = st.one_of(
    st.tuples(st.just("connect"), st.sampled_from(KEYS), steps),
    st.tuples(st.just("disconnect"), st.sampled_from(KEYS), steps),
    st.tuples(st.just("check"), st.sampled_from(KEYS), steps),
    st.tuples(st.just("charge"), st.sampled_from(KEYS), steps, st.integers(0, 3000)),
    st.tuples(st.just("reload"), small_settings, steps),
)


@PROPERTY
@given(initial=small_settings, ops=st.lists(operations, max_size=80))
def test_any_sequence_raises_only_refused_and_counts_stay_exact(initial: LimitSettings, ops: list[tuple]) -> None:
    limiter = ClientLimiter(initial)
    current = initial
    now = T0
    # What each client's connection count must be: +1 per accepted connect,
    # -1 per disconnect of a held connection, never below zero.
    held: dict[str, int] = dict.fromkeys(KEYS, 0)
    for op in ops:
        kind, arg, step = op[0], op[1], op[2]
        now += step
        try:
            if kind == "connect":
                limiter.connect(arg, now)
                if current.enabled:
                    held[arg] += 1
            elif kind == "disconnect":
                limiter.disconnect(arg, now)
                if current.enabled and held[arg] > 0:
                    held[arg] -= 1
            elif kind == "check":
                limiter.check_paste(arg, now)
            elif kind == "charge":
                limiter.charge(arg, op[3], now)
            else:
                if arg.enabled != current.enabled:
                    held = dict.fromkeys(KEYS, 0)
                limiter.replace_settings(arg)
                current = arg
        except Refused as refused:
            assert current.enabled, "a switched-off limiter refused"
            assert refused.reason in ("pastes", "bytes", "connections")
            assert isinstance(refused.retry_after_s, int) and refused.retry_after_s >= 1
            assert refused.retry_after_s <= DAY_S
            if kind == "connect":
                assert held[arg] >= current.connections_per_client or limiter.tracked() >= current.max_clients_tracked
        if not current.enabled:
            assert limiter.tracked() == 0
        else:
            holding = sum(1 for count in held.values() if count)
            assert limiter.tracked() <= max(current.max_clients_tracked, holding)

    if not current.enabled:
        return
    # Release everything the model says is held: every count must be back at
    # zero, so each client can open exactly connections_per_client again.
    for key, count in held.items():
        for _ in range(count):
            limiter.disconnect(key, now)
    for key in KEYS:
        opened = 0
        for _ in range(current.connections_per_client + 3):
            try:
                limiter.connect(key, now)
            except Refused as refused:
                assert refused.reason == "connections"
                break
            opened += 1
        assert opened == current.connections_per_client, key
        for _ in range(opened):
            limiter.disconnect(key, now)


async def test_a_reload_swaps_one_snapshot_for_everyone(nursery, config, clock):
    """SIGHUP applies what is reloadable; the service and the guard then read
    the same configuration, with everything else as the server started."""
    from conftest import start_server

    server = await start_server(nursery, config, clock)
    server.reload(replace(config, pastes_per_minute=5, deny=("192.0.2.0/24",), max_paste_bytes=10))
    assert server.config is server.guard.config
    assert server.config.pastes_per_minute == 5 and server.config.deny == ("192.0.2.0/24",)
    assert server.config.max_paste_bytes == config.max_paste_bytes  # needs a restart
