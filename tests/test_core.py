"""Tier 1: the sans-IO core, byte by byte. No sockets, no store, no clock."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ncpaste.core import keys, units
from ncpaste.core.errors import (
    AliasTaken,
    BadOption,
    BadRequest,
    CorruptPaste,
    EmptyPaste,
    InvalidAlias,
    MethodNotAllowed,
    NotFound,
    NotText,
    PasteError,
    RangeNotSatisfiable,
    StorageUnavailable,
    TooLarge,
)
from ncpaste.core.http import Route, RouteKind, error_response, http_date, parse_range, plan_read, route
from ncpaste.core.ingest import PasteBuilder
from ncpaste.core.options import (
    MAX_PREAMBLE_BYTES,
    PasteOptions,
    PastePlan,
    options_from_pairs,
    parse_preamble,
    parse_query,
    resolve,
)
from ncpaste.core.paste import FLAG_ALIAS, FLAG_BURN, PasteMeta

# Property tests run in milliseconds each; the deadline only adds flakiness
# on a loaded CI machine.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOUR_S = 3600
DAY_S = 86400


# -- units ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100000", 100_000),
        ("512KiB", 512 * 1024),
        ("10MiB", 10 * 1024 * 1024),
        ("1GB", 1_000_000_000),
        ("1GiB", 1024**3),
        ("2k", 2000),
        ("2kb", 2000),
        ("3MB", 3_000_000),
        ("7b", 7),
        ("10mib", 10 * 1024 * 1024),  # units are case-insensitive
        (" 10 MiB ", 10 * 1024 * 1024),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert units.parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "bad size"),
        ("MiB", "bad size"),
        ("1.5MiB", "bad size"),
        ("-1", "bad size"),
        ("10XB", "bad size"),
        ("1TiB", "bad size"),
        ("10 Mi B", "bad size"),
        ("0", "must be positive"),
        ("0KiB", "must be positive"),
        ("1" * 40, "size too long"),
    ],
)
def test_parse_size_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        units.parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", HOUR_S),
        ("2d", 2 * DAY_S),
        ("1w", 7 * DAY_S),
        ("1h30m", HOUR_S + 1800),
        ("1d12h", DAY_S + 12 * HOUR_S),
        ("90", 90),  # bare seconds
        ("36500d", units.MAX_DURATION_S),  # exactly 100 years is allowed
    ],
)
def test_parse_duration(text: str, expected: int) -> None:
    assert units.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "bad duration"),
        ("h", "bad duration"),
        ("1x", "bad duration"),
        ("1H", "bad duration"),
        ("1h 30m", "bad duration"),
        (" 1h", "bad duration"),
        ("1h-", "bad duration"),
        ("-5s", "bad duration"),
        ("1.5h", "bad duration"),
        ("0s", "must be positive"),
        ("0", "must be positive"),
        ("0h0m", "must be positive"),
        ("36501d", "longer than 100 years"),
        ("5300w", "longer than 100 years"),
        (str(units.MAX_DURATION_S + 1), "longer than 100 years"),
        ("1" * 40, "duration too long"),
    ],
)
def test_parse_duration_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        units.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5.0),
        ("2.5", 2.5),
        (".5", 0.5),
        ("500ms", 0.5),
        ("1.5ms", 0.0015),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        (" 3 ", 3.0),
    ],
)
def test_parse_seconds(text: str, expected: float) -> None:
    assert units.parse_seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0", "must be positive"),
        ("0.0", "must be positive"),
        ("0ms", "must be positive"),
        ("-1", "bad duration"),
        ("inf", "bad duration"),
        ("nan", "bad duration"),
        ("1e3", "bad duration"),
        ("", "bad duration"),
        ("5" * 40, "timeout too long"),
    ],
)
def test_parse_seconds_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        units.parse_seconds(text)


@pytest.mark.parametrize(
    ("n", "text"),
    [(10 * 1024 * 1024, "10 MiB"), (512 * 1024, "512 KiB"), (1024**3, "1 GiB"), (1000, "1000 bytes"), (1536, "1536 bytes")],
)
def test_format_size(n: int, text: str) -> None:
    assert units.format_size(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(7 * DAY_S, "1w"), (2 * DAY_S, "2d"), (5400, "90m"), (HOUR_S, "1h"), (61, "61s")]
)
def test_format_duration_round_trips(seconds: int, text: str) -> None:
    assert units.format_duration(seconds) == text
    assert units.parse_duration(text) == seconds


@PROPERTY
@given(st.text(max_size=40))
def test_parse_size_raises_only_value_error(text: str) -> None:
    try:
        value = units.parse_size(text)
    except ValueError:
        return
    assert isinstance(value, int) and value > 0


@PROPERTY
@given(st.one_of(st.text(max_size=40), st.from_regex(r"(\d{1,4}[smhdw]){1,4}", fullmatch=True)))
def test_parse_duration_raises_only_value_error(text: str) -> None:
    try:
        value = units.parse_duration(text)
    except ValueError:
        return
    assert isinstance(value, int) and 0 < value <= units.MAX_DURATION_S


@PROPERTY
@given(st.text(max_size=40))
def test_parse_seconds_raises_only_value_error(text: str) -> None:
    try:
        value = units.parse_seconds(text)
    except ValueError:
        return
    assert value > 0


# -- options -------------------------------------------------------------------


def test_parse_preamble_all_options() -> None:
    options = parse_preamble(b"#!ncpaste expire=1h alias=build-42 burn=1 token=yes")
    assert options == PasteOptions(expire_s=HOUR_S, alias="build-42", burn=True, token=True)


def test_parse_preamble_without_options_gives_defaults() -> None:
    assert parse_preamble(b"#!ncpaste") == PasteOptions()
    assert parse_preamble(b"#!ncpaste   ") == PasteOptions()


def test_parse_preamble_tabs_and_runs_of_spaces_separate_options() -> None:
    assert parse_preamble(b"#!ncpaste\texpire=10m   burn=on") == PasteOptions(expire_s=600, burn=True)


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        (b"#!ncpasteexpire=1h", BadOption, "with a space after #!ncpaste"),
        (b"#!ncpaste expire", BadOption, "bad option 'expire': write name=value"),
        (b"#!ncpaste expire=", BadOption, "bad option 'expire=': write name=value"),
        (b"#!ncpaste =1h", BadOption, "unknown option ''"),
        (b"#!ncpaste color=red", BadOption, "unknown option 'color': known options are expire, alias, burn, token, redact"),
        (b"#!ncpaste expire=1h expire=2h", BadOption, "option expire given twice"),
        (b"#!ncpaste burn=1 burn=0", BadOption, "option burn given twice"),
        (b"#!ncpaste expire=soon", BadOption, "bad option expire=soon: use e.g. 30s, 10m, 1h, 2d, 1w"),
        (b"#!ncpaste expire=0s", BadOption, "bad option expire=0s"),
        (b"#!ncpaste expire=6000w", BadOption, "bad option expire=6000w"),
        (b"#!ncpaste expire=36501d", BadOption, "bad option expire=36501d"),
        (b"#!ncpaste burn=maybe", BadOption, "bad option burn=maybe: use burn=1 or burn=0"),
        (b"#!ncpaste token=2", BadOption, "bad option token=2: use token=1 or token=0"),
        (b"#!ncpaste alias=\xc3\xa9t\xc3\xa9", BadOption, "options line must be plain ASCII"),
        (b"#!ncpaste alias=ab", InvalidAlias, "invalid alias 'ab': alias must be 3 to 64 characters"),
        (b"#!ncpaste alias=-abc", InvalidAlias, "must start with a letter or digit"),
        (b"#!ncpaste alias=healthz", InvalidAlias, "invalid alias 'healthz': alias 'healthz' is reserved"),
        (b"#!ncpaste alias=Robots.TXT", InvalidAlias, "is reserved"),
        (b"#!/bin/sh", BadOption, "options line must start with #!ncpaste"),
    ],
)
def test_parse_preamble_rejects(line: bytes, error: type[PasteError], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_preamble(line)
    assert message in caught.value.message
    assert caught.value.http_status == 400


@pytest.mark.parametrize("word", ["1", "yes", "true", "on", "YES", "True", "On"])
def test_bool_option_true_forms(word: str) -> None:
    assert options_from_pairs([("burn", word), ("token", word)]) == PasteOptions(burn=True, token=True)


@pytest.mark.parametrize("word", ["0", "no", "false", "off", "NO", "False", "OFF"])
def test_bool_option_false_forms(word: str) -> None:
    assert options_from_pairs([("burn", word), ("token", word)]) == PasteOptions(burn=False, token=False)


@pytest.mark.parametrize("alias", ["abc", "build-42", "A.b_c-9", "9lives", "a" * 64, "favicon"])
def test_valid_aliases_are_accepted(alias: str) -> None:
    assert options_from_pairs([("alias", alias)]).alias == alias


def test_unknown_option_name_is_echoed_safely() -> None:
    with pytest.raises(BadOption) as caught:
        options_from_pairs([("\u00e9\x1b[31m" + "x" * 100, "1")])
    message = caught.value.message
    assert message.startswith("unknown option '")
    assert message.endswith("...': known options are expire, alias, burn, token, redact")  # clipped
    assert "xe9" in message and "\u00e9" not in message
    assert message.isascii() and message.isprintable()


@pytest.mark.parametrize(
    "query",
    ["expire=%1B%5B2J%0Aboom", "burn=%1B%5D0%3Bpwned%07", "token=a%0D%0Ab", "alias=%1B%5B31mred"],
)
def test_echoed_option_values_are_printable_one_line(query: str) -> None:
    """Messages go to a terminal (``error: ...`` on the netcat port) and are
    one line by contract: a client's control characters must be escaped."""
    with pytest.raises(BadRequest) as caught:
        parse_query(query)
    message = caught.value.message
    assert message.isprintable(), repr(message)
    assert "\n" not in message and "\x1b" not in message


def test_parse_query() -> None:
    assert parse_query("expire=1h&burn=1&token=on&alias=my-log") == PasteOptions(
        expire_s=HOUR_S, alias="my-log", burn=True, token=True
    )
    assert parse_query("") == PasteOptions()
    assert parse_query("expire=1h30m") == PasteOptions(expire_s=5400)


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("burn", BadOption, "malformed query string"),
        ("burn=1&&token=1", BadOption, "malformed query string"),
        ("burn=", BadOption, "option burn needs a value, e.g. burn=1"),
        ("expire=1h&expire=2h", BadOption, "option expire given twice"),
        ("colour=red", BadOption, "unknown option 'colour'"),
        ("%C3%A9=1", BadOption, "unknown option '"),
        ("expire=forever", BadOption, "bad option expire=forever"),
        ("alias=a%2Fb", InvalidAlias, "invalid alias 'a/b'"),
        ("alias=" + "a" * 65, InvalidAlias, "alias must be 3 to 64 characters"),
        ("alias=" + "a" * 2100, BadOption, "query string too long"),
    ],
)
def test_parse_query_rejects(query: str, error: type[PasteError], message: str) -> None:
    with pytest.raises(error) as caught:
        parse_query(query)
    assert message in caught.value.message


def test_resolve_uses_default_expiry() -> None:
    plan = resolve(PasteOptions(burn=True), default_expire_s=7 * DAY_S, max_expire_s=90 * DAY_S)
    assert plan == PastePlan(expire_s=7 * DAY_S, alias=None, burn=True, token=False)


def test_resolve_keeps_expiry_within_limits() -> None:
    plan = resolve(PasteOptions(expire_s=HOUR_S, alias="x-1", token=True), default_expire_s=DAY_S, max_expire_s=2 * DAY_S)
    assert plan == PastePlan(expire_s=HOUR_S, alias="x-1", burn=False, token=True)


def test_resolve_caps_expiry_at_maximum() -> None:
    plan = resolve(PasteOptions(expire_s=52 * 7 * DAY_S), default_expire_s=DAY_S, max_expire_s=90 * DAY_S)
    assert plan.expire_s == 90 * DAY_S
    # The maximum itself passes unchanged.
    plan = resolve(PasteOptions(expire_s=90 * DAY_S), default_expire_s=DAY_S, max_expire_s=90 * DAY_S)
    assert plan.expire_s == 90 * DAY_S


@PROPERTY
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda rest: b"#!ncpaste " + rest)))
def test_parse_preamble_raises_only_paste_errors(line: bytes) -> None:
    try:
        options = parse_preamble(line)
    except PasteError as exc:
        assert isinstance(exc, BadOption)  # InvalidAlias is a BadRequest, not a BadOption
    except Exception as exc:  # pragma: no cover - the failure we look for
        pytest.fail(f"parse_preamble({line!r}) raised {exc!r}")
    else:
        assert isinstance(options, PasteOptions)


@PROPERTY
@given(
    st.lists(
        st.tuples(st.sampled_from(["expire", "alias", "burn", "token"]), st.text(max_size=20)),
        max_size=3,
    )
)
def test_options_from_pairs_raises_only_bad_request(pairs: list[tuple[str, str]]) -> None:
    try:
        options_from_pairs(pairs)
    except BadRequest:
        pass


# -- keys ----------------------------------------------------------------------


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("0Oo1lI") & set(keys.KEY_ALPHABET)
    assert len(set(keys.KEY_ALPHABET)) == len(keys.KEY_ALPHABET) == 56
    assert keys.KEY_ALPHABET.isascii() and keys.KEY_ALPHABET.isalnum()


def test_new_key_length_and_alphabet() -> None:
    drawn = [keys.new_key(keys.DEFAULT_KEY_LENGTH) for _ in range(2000)]
    assert all(len(key) == 12 for key in drawn)
    assert set("".join(drawn)) == set(keys.KEY_ALPHABET)  # every symbol is used
    assert len(set(drawn)) == len(drawn)
    assert len(keys.new_key(20)) == 20


def test_min_key_length_gives_at_least_60_bits() -> None:
    assert keys.key_bits(keys.MIN_KEY_LENGTH) >= 60
    assert keys.key_bits(keys.MIN_KEY_LENGTH - 1) < 60  # and is the smallest such length
    assert keys.MIN_KEY_LENGTH == 11
    assert keys.MIN_KEY_LENGTH <= keys.DEFAULT_KEY_LENGTH <= keys.MAX_KEY_LENGTH
    assert keys.key_bits(12) == pytest.approx(12 * math.log2(56))


@pytest.mark.parametrize("name", ["abc", "build-42", "A.b_c-9", "0lo", "x" * 64, "k7Qm2xTfL9aR"])
def test_check_alias_accepts(name: str) -> None:
    assert keys.check_alias(name) == name
    assert keys.is_plausible_name(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "alias must be 3 to 64 characters"),
        ("ab", "alias must be 3 to 64 characters"),
        ("a" * 65, "alias must be 3 to 64 characters"),
        ("-abc", "must start with a letter or digit"),
        (".abc", "must start with a letter or digit"),
        ("_abc", "must start with a letter or digit"),
        ("...", "must start with a letter or digit"),
        ("ab c", "may use only A-Z a-z 0-9 . _ -"),
        ("abc/def", "may use only"),
        ("abc\n", "may use only"),
        ("h\u00e9llo", "may use only"),
        ("abc%20", "may use only"),
        ("healthz", "alias 'healthz' is reserved"),
        ("HealthZ", "is reserved"),
        ("robots.txt", "is reserved"),
        ("favicon.ico", "is reserved"),
        ("admin", "is reserved"),
        ("index.html", "is reserved"),
    ],
)
def test_check_alias_rejects(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace(".", r"\.")):
        keys.check_alias(name)


def test_token_hash_and_matches() -> None:
    token = keys.new_token()
    assert len(token) == 22  # 16 random bytes, URL-safe base64
    assert keys.new_token() != token
    stored = keys.token_hash(token)
    assert stored == hashlib.sha256(token.encode()).digest()
    assert len(stored) == 32
    assert keys.token_matches(token, stored)
    assert not keys.token_matches(token + "x", stored)
    assert not keys.token_matches("", stored)
    assert not keys.token_matches(token, keys.token_hash(keys.new_token()))
    # A surrogate in a header-decoded token must not crash the comparison.
    assert not keys.token_matches("\udcff", stored)


# -- ingest --------------------------------------------------------------------


def build(chunks: list[bytes], *, max_bytes: int = 1 << 20, preamble: bool = True) -> tuple[PasteOptions, bytes]:
    builder = PasteBuilder(max_bytes, accept_preamble=preamble)
    for chunk in chunks:
        builder.feed(chunk)
    options, body = builder.finish()
    return options, bytes(body)


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def not_text(chunks: list[bytes], **kwargs: object) -> str:
    with pytest.raises(NotText) as caught:
        build(chunks, **kwargs)  # type: ignore[arg-type]
    assert caught.value.http_status == 415
    return caught.value.message


def test_preamble_in_one_chunk() -> None:
    options, body = build([b"#!ncpaste expire=1h burn=1\nhello\nworld\n"])
    assert options == PasteOptions(expire_s=HOUR_S, burn=True)
    assert body == b"hello\nworld\n"


def test_preamble_split_byte_by_byte() -> None:
    data = b"#!ncpaste expire=10m alias=build-42 token=1\nline one\nline two\n"
    options, body = build(bytewise(data))
    assert options == PasteOptions(expire_s=600, alias="build-42", token=True)
    assert body == b"line one\nline two\n"


def test_preamble_with_crlf() -> None:
    options, body = build([b"#!ncpaste expire=2d\r\n", b"body\r\nmore\r\n"])
    assert options == PasteOptions(expire_s=2 * DAY_S)
    assert body == b"body\r\nmore\r\n"
    options, body = build(bytewise(b"#!ncpaste burn=1\r\nx\r\n"))
    assert options == PasteOptions(burn=True)
    assert body == b"x\r\n"


@pytest.mark.parametrize("split", [False, True])
def test_shebang_is_body_not_options(split: bool) -> None:
    data = b"#!/bin/sh\necho hi\n"
    options, body = build(bytewise(data) if split else [data])
    assert options == PasteOptions()
    assert body == data


@pytest.mark.parametrize(
    "data",
    [b"#", b"#!", b"#!ncpast", b"#!nc\nx", b"#!ncpastX expire=1h\n", b"## heading\n", b"plain text\n"],
)
def test_almost_preambles_are_body(data: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        options, body = build(chunks)
        assert options == PasteOptions()
        assert body == data


def test_preamble_ignored_when_not_accepted() -> None:
    data = b"#!ncpaste expire=1h\nhello\n"
    options, body = build([data], preamble=False)
    assert options == PasteOptions()
    assert body == data


def test_bad_preamble_is_reported() -> None:
    with pytest.raises(BadOption, match="unknown option 'colour'"):
        build(bytewise(b"#!ncpaste colour=red\nhello\n"))


def test_preamble_is_only_the_first_line() -> None:
    options, body = build([b"hello\n#!ncpaste expire=1h\n"])
    assert options == PasteOptions()
    assert body == b"hello\n#!ncpaste expire=1h\n"


@pytest.mark.parametrize("data", [b"#!ncpaste expire=1h\n", b"#!ncpaste expire=1h", b"#!ncpaste\r\n"])
def test_preamble_only_then_eof_is_empty(data: bytes) -> None:
    for chunks in ([data], bytewise(data)):
        with pytest.raises(EmptyPaste, match="empty paste: nothing was received"):
            build(chunks)


def test_unterminated_preamble_options_are_still_checked() -> None:
    with pytest.raises(BadOption, match="bad option burn=2"):
        build([b"#!ncpaste burn=2"])


def test_nothing_at_all_is_empty() -> None:
    with pytest.raises(EmptyPaste):
        build([])
    with pytest.raises(EmptyPaste):
        build([b"", b""], preamble=False)


def test_preamble_too_long_without_newline() -> None:
    builder = PasteBuilder(1 << 20, accept_preamble=True)
    line = b"#!ncpaste " + b"x" * (MAX_PREAMBLE_BYTES - len(b"#!ncpaste "))
    assert len(line) == MAX_PREAMBLE_BYTES
    for byte in bytewise(line):
        builder.feed(byte)  # up to the limit: still waiting for the newline
    with pytest.raises(BadOption, match="options line longer than 1024 bytes"):
        builder.feed(b"x")


def test_preamble_too_long_with_newline() -> None:
    with pytest.raises(BadOption, match="options line longer than 1024 bytes"):
        build([b"#!ncpaste " + b"x" * 2000 + b"\nbody\n"])


def test_preamble_at_the_length_limit_is_parsed() -> None:
    line = b"#!ncpaste expire=1h" + b" " * (MAX_PREAMBLE_BYTES - 19)
    assert len(line) == MAX_PREAMBLE_BYTES
    options, body = build([line + b"\nok\n"])
    assert options == PasteOptions(expire_s=HOUR_S)
    assert body == b"ok\n"


def test_preamble_does_not_count_against_the_size_limit() -> None:
    options, body = build([b"#!ncpaste burn=1\n", b"x" * 10], max_bytes=10)
    assert options.burn and body == b"x" * 10


def test_size_limit_exact() -> None:
    _, body = build([b"a" * 6, b"b" * 4], max_bytes=10, preamble=False)
    assert body == b"aaaaaabbbb"
    with pytest.raises(TooLarge) as caught:
        build([b"a" * 6, b"b" * 5], max_bytes=10, preamble=False)
    assert caught.value.message == "paste too large: the limit is 10 bytes"
    assert caught.value.http_status == 413


def test_size_limit_message_names_the_unit() -> None:
    limit = 10 * 1024 * 1024
    builder = PasteBuilder(limit)
    builder.feed(b"x" * limit)
    assert builder.size == limit
    with pytest.raises(TooLarge, match="the limit is 10 MiB"):
        builder.feed(b"\n")


def test_size_limit_counts_body_after_preamble_bytewise() -> None:
    with pytest.raises(TooLarge):
        build(bytewise(b"#!ncpaste expire=1h\n" + b"y" * 11), max_bytes=10)


def test_nul_byte_position_and_line() -> None:
    data = b"line1\nline2\nab\0cd\n"
    expected = "not text: NUL byte at byte 14 (line 3); ncpaste stores UTF-8 text only"
    assert not_text([data]) == expected
    assert not_text([b"line1\n", b"line2\nab", b"\0cd\n"]) == expected
    assert not_text(bytewise(data)) == expected


def test_nul_byte_first() -> None:
    assert not_text([b"\0"]) == "not text: NUL byte at byte 0 (line 1); ncpaste stores UTF-8 text only"


def test_nul_offset_counts_from_body_not_preamble() -> None:
    assert "NUL byte at byte 3 (line 2)" in not_text([b"#!ncpaste burn=1\nab\n\0"])


def test_invalid_utf8_in_one_chunk() -> None:
    assert not_text([b"ok\nfine\n\xff\n"]) == (
        "not text: invalid UTF-8 at byte 8 (line 3); ncpaste stores UTF-8 text only"
    )


def test_invalid_utf8_in_a_later_chunk() -> None:
    assert "invalid UTF-8 at byte 5 (line 1)" in not_text([b"abc", b"de\xff"])


def test_invalid_utf8_straddling_chunks() -> None:
    # \xe2\x82 starts a 3-byte character; 'X' is not a continuation byte.
    data = b"ok\n\xe2\x82X\n"
    want = "invalid UTF-8 at byte 3 (line 2)"
    assert want in not_text([b"ok\n\xe2", b"\x82", b"X\n"])
    assert want in not_text([b"ok\n\xe2\x82", b"X\n"])
    assert want in not_text(bytewise(data))


def test_invalid_lead_after_held_back_lead() -> None:
    # The first \xe2 is held back waiting for continuations; the next chunk
    # starts a fresh (valid) euro sign, which makes the first one invalid.
    assert "invalid UTF-8 at byte 1 (line 1)" in not_text([b"a\xe2", b"\xe2\x82\xac"])


def test_surrogate_encoding_is_not_text() -> None:
    assert "invalid UTF-8 at byte 2" in not_text([b"ab\xed", b"\xa0\x80"])


def test_multibyte_characters_split_across_chunks() -> None:
    text = "héllo → wörld 😀 ✓ 日本語\n".encode()
    options, body = build(bytewise(text))
    assert body == text
    _, body = build([text[:2], text[2:9], text[9:20], text[20:]])
    assert body == text


def test_truncated_final_character() -> None:
    message = not_text([b"hi\n", b"\xf0\x9f", b"\x98"])
    assert message == (
        "not text: invalid UTF-8 (truncated character) at byte 3 (line 2); ncpaste stores UTF-8 text only"
    )


def test_memoryview_and_bytearray_chunks() -> None:
    _, body = build([memoryview(b"ab"), bytearray(b"cd"), b"e"], preamble=False)
    assert body == b"abcde"


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    pieces = []
    start = 0
    for cut in cuts + [len(data)]:
        pieces.append(data[start:cut])
        start = cut
    return pieces


TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=200,
)


@PROPERTY
@given(st.data(), TEXT, st.booleans())
def test_valid_text_in_any_chunking_comes_back_exactly(data: st.DataObject, text: str, preamble: bool) -> None:
    assume(not text.startswith("#!ncpaste"))
    raw = text.encode()
    chunks = data.draw(chunked(raw))
    options, body = build(chunks, preamble=preamble)
    assert body == raw
    assert options == PasteOptions()


@PROPERTY
@given(st.data(), st.binary(min_size=1, max_size=120))
def test_invalid_utf8_offset_matches_a_one_shot_decode(data: st.DataObject, raw: bytes) -> None:
    """Whatever the chunking, the builder reports the first bad byte where
    ``bytes.decode`` does."""
    raw = raw.replace(b"\0", b"")
    assume(raw)
    chunks = data.draw(chunked(raw))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = not_text(chunks, preamble=False)
        line = raw.count(b"\n", 0, exc.start) + 1
        assert f"at byte {exc.start} (line {line})" in message
    else:
        assert build(chunks, preamble=False)[1] == raw


@PROPERTY
@given(st.data(), st.binary(max_size=200), st.integers(1, 64))
def test_builder_raises_only_paste_errors(data: st.DataObject, raw: bytes, max_bytes: int) -> None:
    prefix = data.draw(st.sampled_from([b"", b"#!ncpaste ", b"#!ncpaste expire=1h\n", b"#!"]))
    chunks = data.draw(chunked(prefix + raw))
    try:
        options, body = build(chunks, max_bytes=max_bytes)
    except PasteError as exc:
        assert isinstance(exc, (BadRequest, TooLarge, NotText))
    else:
        assert 0 < len(body) <= max_bytes
        assert b"\0" not in body
        body.decode("utf-8")


# -- HTTP decisions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("GET", "/", Route("usage")),
        ("HEAD", "/", Route("usage")),
        ("POST", "/", Route("create")),
        ("POST", "/?expire=1h&burn=1", Route("create", query="expire=1h&burn=1")),
        ("GET", "/healthz", Route("healthz")),
        ("HEAD", "/healthz", Route("healthz")),
        ("GET", "/robots.txt", Route("robots")),
        ("GET", "/k7Qm2xTfL9aR", Route("read", "k7Qm2xTfL9aR")),
        ("HEAD", "/k7Qm2xTfL9aR", Route("read", "k7Qm2xTfL9aR")),
        ("GET", "/build-42?x=1", Route("read", "build-42", "x=1")),
        ("GET", "/%61bc", Route("read", "abc")),
        ("PUT", "/build-42", Route("put", "build-42")),
        ("PUT", "/build-42?expire=1h", Route("put", "build-42", "expire=1h")),
        ("DELETE", "/k7Qm2xTfL9aR", Route("delete", "k7Qm2xTfL9aR")),
    ],
)
def test_route(method: str, target: str, expected: Route) -> None:
    assert route(method, target) == expected


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("PUT", "/", "GET, HEAD, POST"),
        ("DELETE", "/", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("PUT", "/robots.txt", "GET, HEAD"),
        ("POST", "/robots.txt", "GET, HEAD"),
        ("PATCH", "/k7Qm2xTfL9aR", "GET, HEAD, POST, PUT, DELETE"),
        ("OPTIONS", "/k7Qm2xTfL9aR", "GET, HEAD, POST, PUT, DELETE"),
    ],
)
def test_route_method_not_allowed(method: str, target: str, allow: str) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        route(method, target)
    assert caught.value.allow == allow
    assert caught.value.http_status == 405
    assert caught.value.message == f"method {method} not allowed here"


@pytest.mark.parametrize(
    "target",
    ["/ab", "/a/b/c", "/..", "/%2e%2e", "/-abc", "/.well-known", "/" + "a" * 65, "/a%20b", "/%2Fetc", "/a b"],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_route_implausible_names_are_not_found(method: str, target: str) -> None:
    with pytest.raises(NotFound, match="no such paste"):
        route(method, target)


@pytest.mark.parametrize("target", ["*", "abc", ""])
def test_route_bad_target(target: str) -> None:
    with pytest.raises(BadRequest, match="bad request target"):
        route("GET", target)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://example.com/abcdefgh", Route(RouteKind.READ, "abcdefgh")),
        ("https://example.com:8443/abcdefgh?tail=5", Route(RouteKind.READ, "abcdefgh", "tail=5")),
        ("http://example.com", Route(RouteKind.USAGE)),
        ("http://example.com?expire=1h", Route(RouteKind.USAGE, query="expire=1h")),
    ],
)
def test_route_absolute_form_is_routed_by_its_path(target: str, expected: Route) -> None:
    """RFC 9112 3.2.2: a server MUST accept absolute-form."""
    assert route("GET", target) == expected


def test_route_asterisk_and_connect() -> None:
    assert route("OPTIONS", "*") == Route(RouteKind.OPTIONS)
    with pytest.raises(MethodNotAllowed, match="not a proxy"):
        route("CONNECT", "example.com:443")


@pytest.mark.parametrize("target", ["/%ff", "/%c3", "/abc%e2%82"])
def test_route_percent_encoded_non_utf8_is_a_client_error(target: str) -> None:
    """A percent-escape that is not UTF-8 is the client's mistake (4xx), not
    an internal error: route() must raise only its documented PasteErrors."""
    with pytest.raises((NotFound, BadRequest)):
        route("GET", target)


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=0-0", 100, (0, 1)),
        ("bytes=5-", 100, (5, 100)),
        ("bytes=99-", 100, (99, 100)),
        ("bytes=90-200", 100, (90, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=-100", 100, (0, 100)),
        ("bytes=-500", 100, (0, 100)),
        (" bytes=0-9 ", 100, (0, 10)),
    ],
)
def test_parse_range(value: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(value, size) == expected


@pytest.mark.parametrize(
    ("value", "size"),
    [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=1000-", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_parse_range_unsatisfiable(value: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(value, size)
    assert caught.value.size == size
    assert caught.value.http_status == 416


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-9,20-29",
        "bytes=0-9, 20-29",
        "bytes=-",
        "bytes=9-0",
        "bytes=a-b",
        "items=0-9",
        "bytes 0-9",
        "garbage",
        "",
        "bytes=0-9" + " " * 200,
        "bytes=1" + "0" * 120 + "-",
    ],
)
def test_parse_range_ignored(value: str) -> None:
    assert parse_range(value, 100) is None


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=120),
        st.from_regex(r"bytes=\d{0,4}-\d{0,4}(,\d{0,4}-\d{0,4})?", fullmatch=True),
    ),
    st.integers(0, 20_000),
)
def test_parse_range_raises_only_range_errors(value: str, size: int) -> None:
    try:
        chosen = parse_range(value, size)
    except RangeNotSatisfiable as exc:
        assert exc.size == size
    else:
        if chosen is not None:
            start, end = chosen
            assert 0 <= start < end <= size


CREATED_MS = 1_790_000_000_000
CHECKSUM = bytes(range(16))
ETAG = '"' + CHECKSUM.hex() + '"'


def meta(*, size: int = 100, lifetime_s: int = HOUR_S, flags: int = 0) -> PasteMeta:
    return PasteMeta(CREATED_MS, CREATED_MS + lifetime_s * 1000, size, CHECKSUM, b"\0" * 32, flags)


def headers_of(plan_headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    names = [name for name, _ in plan_headers]
    assert len(names) == len(set(names)), f"duplicate headers: {names}"
    return dict(plan_headers)


def read(  # type: ignore[no-untyped-def]
    method: str = "GET", *, paste: PasteMeta | None = None, now_ms: int = CREATED_MS,
    inm: str | None = None, range_: str | None = None,
):
    plan = plan_read(method, paste or meta(), now_ms, if_none_match=inm, range_header=range_, shared_max_age_s=5)
    return plan, headers_of(plan.headers)


def test_plan_read_full_get() -> None:
    plan, headers = read()
    assert plan.status == 200
    assert plan.span == (0, 100)
    assert headers[b"content-length"] == b"100"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"etag"] == ETAG.encode()
    assert headers[b"cache-control"] == b"public, max-age=3600, s-maxage=5"
    assert headers[b"accept-ranges"] == b"bytes"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"last-modified"] == http_date(CREATED_MS)
    assert headers[b"x-expires"] == http_date(CREATED_MS + HOUR_S * 1000)
    assert b"content-range" not in headers


def test_http_date_format() -> None:
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(784_111_777_000) == b"Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110 example


def test_plan_read_range() -> None:
    plan, headers = read(range_="bytes=0-9")
    assert (plan.status, plan.span) == (206, (0, 10))
    assert headers[b"content-range"] == b"bytes 0-9/100"
    assert headers[b"content-length"] == b"10"


def test_plan_read_suffix_range() -> None:
    plan, headers = read(range_="bytes=-30")
    assert (plan.status, plan.span) == (206, (70, 100))
    assert headers[b"content-range"] == b"bytes 70-99/100"
    assert headers[b"content-length"] == b"30"


def test_plan_read_ignored_range_sends_everything() -> None:
    plan, headers = read(range_="bytes=0-1,5-6")
    assert (plan.status, plan.span) == (200, (0, 100))
    assert b"content-range" not in headers


def test_plan_read_unsatisfiable_range() -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        read(range_="bytes=100-")
    assert caught.value.size == 100


@pytest.mark.parametrize("inm", [ETAG, "W/" + ETAG, f'"nope", {ETAG}', f'"a",W/{ETAG} ,"b"', "*"])
def test_plan_read_not_modified(inm: str) -> None:
    plan, headers = read(inm=inm)
    assert plan.status == 304
    assert plan.span is None
    assert headers[b"etag"] == ETAG.encode()
    assert b"content-length" not in headers


def test_plan_read_not_modified_wins_over_range() -> None:
    plan, _ = read(inm=ETAG, range_="bytes=0-9")
    assert (plan.status, plan.span) == (304, None)


@pytest.mark.parametrize("inm", ['"nope"', CHECKSUM.hex(), '"' + CHECKSUM.hex()[:-1] + '"', ""])
def test_plan_read_etag_mismatch_is_full_read(inm: str) -> None:
    plan, _ = read(inm=inm)
    assert (plan.status, plan.span) == (200, (0, 100))


def test_plan_read_head_has_length_but_no_body() -> None:
    plan, headers = read("HEAD")
    assert (plan.status, plan.span) == (200, None)
    assert headers[b"content-length"] == b"100"
    plan, headers = read("HEAD", range_="bytes=-10")
    assert (plan.status, plan.span) == (206, None)
    assert headers[b"content-length"] == b"10"
    assert headers[b"content-range"] == b"bytes 90-99/100"


def test_plan_read_burn_paste() -> None:
    burn = meta(flags=FLAG_BURN)
    plan, headers = read(paste=burn)
    assert (plan.status, plan.span) == (200, (0, 100))
    assert headers[b"cache-control"] == b"no-store"
    # Range and If-None-Match are ignored: the one read must be the whole paste.
    plan, headers = read(paste=burn, range_="bytes=0-9")
    assert (plan.status, plan.span) == (200, (0, 100))
    assert b"content-range" not in headers
    assert headers[b"content-length"] == b"100"
    plan, headers = read(paste=burn, inm=ETAG)
    assert (plan.status, plan.span) == (200, (0, 100))
    plan, headers = read(paste=burn, inm="*", range_="bytes=200-")
    assert (plan.status, plan.span) == (200, (0, 100))


def test_plan_read_alias_flag_does_not_change_caching() -> None:
    _, headers = read(paste=meta(flags=FLAG_ALIAS))
    assert headers[b"cache-control"] == b"public, max-age=3600, s-maxage=5"


@pytest.mark.parametrize(
    ("remaining_ms", "max_age"),
    [(3_600_000, b"3600"), (1500, b"1"), (1000, b"1"), (999, b"0"), (1, b"0"), (0, b"0"), (-5000, b"0")],
)
def test_cache_max_age_never_exceeds_remaining_lifetime(remaining_ms: int, max_age: bytes) -> None:
    paste = meta()
    _, headers = read(paste=paste, now_ms=paste.expires_ms - remaining_ms)
    shared = min(int(max_age), 5)
    assert headers[b"cache-control"] == b"public, max-age=" + max_age + b", s-maxage=%d" % shared


@PROPERTY
@given(st.integers(1, 10**10), st.integers(0, 10**10))
def test_cache_max_age_property(lifetime_ms: int, elapsed_ms: int) -> None:
    paste = PasteMeta(CREATED_MS, CREATED_MS + lifetime_ms, 1, CHECKSUM, b"", 0)
    now = CREATED_MS + elapsed_ms
    headers = dict(plan_read("GET", paste, now, if_none_match=None, range_header=None, shared_max_age_s=5).headers)
    directives = dict(item.split(b"=") for item in headers[b"cache-control"].split(b", ")[1:])
    max_age, shared = int(directives[b"max-age"]), int(directives[b"s-maxage"])
    assert 0 <= max_age * 1000 <= max(paste.expires_ms - now, 0)
    assert 0 <= shared <= min(max_age, 5)


def response_headers(error: PasteError) -> tuple[int, dict[bytes, bytes], bytes]:
    response = error_response(error)
    headers = headers_of(response.headers)
    assert headers[b"content-length"] == b"%d" % len(response.body)
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"x-content-type-options"] == b"nosniff"
    return response.status, headers, response.body


def test_error_response_not_found() -> None:
    status, headers, body = response_headers(NotFound("no such paste"))
    assert (status, body) == (404, b"error: no such paste\n")
    assert b"allow" not in headers


def test_error_response_method_not_allowed_has_allow() -> None:
    status, headers, body = response_headers(MethodNotAllowed("method PUT not allowed here", "GET, HEAD"))
    assert (status, body) == (405, b"error: method PUT not allowed here\n")
    assert headers[b"allow"] == b"GET, HEAD"


def test_error_response_range_has_content_range() -> None:
    status, headers, body = response_headers(RangeNotSatisfiable("range not satisfiable", 1234))
    assert (status, body) == (416, b"error: range not satisfiable\n")
    assert headers[b"content-range"] == b"bytes */1234"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadOption("bad option burn=2"), 400),
        (InvalidAlias("invalid alias"), 400),
        (EmptyPaste("empty paste"), 400),
        (AliasTaken("alias 'x' is taken"), 409),
        (TooLarge("paste too large"), 413),
        (NotText("not text"), 415),
        (StorageUnavailable("storage unavailable"), 503),
        (CorruptPaste("stored paste is damaged"), 500),
    ],
)
def test_error_response_status_and_message(error: PasteError, status: int) -> None:
    got_status, _, body = response_headers(error)
    assert got_status == status
    assert body == f"error: {error.message}\n".encode()


def test_internal_error_never_leaks_its_message() -> None:
    secret = "lmdb.Error: /var/lib/ncpaste/data.mdb: token=hunter2"
    status, _, body = response_headers(PasteError(secret))
    assert (status, body) == (500, b"error: internal error\n")
    assert b"hunter2" not in body and b"lmdb" not in body
