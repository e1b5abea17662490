"""Tier 1: log-friendly reads (``?tail=``, ``?lines=``, ``?ansi=strip``, ``?grep=``)
in the sans-IO core. No I/O.

Judged by what a reader gets: the exact bytes of the answer, and for a bad
query a BadOption (HTTP 400) whose message names the option.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncpaste.core.ansi import strip_ansi
from ncpaste.core.errors import BadOption
from ncpaste.core.slicing import (
    MAX_GREP_CHARS,
    MAX_LINE_NUMBER,
    MAX_LOG_QUERY_CHARS,
    TO_END,
    LogQuery,
    apply,
    parse_log_query,
)

from conftest import hang_guard

# Bounds a hang on big inputs; linear work finishes in well under a second.

LAST = b"\x1b[31mError: Process completed with exit code 1.\x1b[0m"
LOG = (
    b"Run actions/checkout@v4\n"  # 1
    b"\x1b[36;1mnpm ci\x1b[0m\n"  # 2
    b"added 812 packages\n"  # 3
    b"\x1b[31merror\x1b[0m: test failed\n"  # 4
    b"  at foo.test.js:12\n"  # 5
    b"Tests: 1 failed, 41 passed\n"  # 6
) + LAST  # 7, without a newline
LAST_STRIPPED = b"Error: Process completed with exit code 1."



def read(body: bytes, query: str) -> bytes:
    return apply(body, parse_log_query(query))


# --- parse_log_query ---------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", LogQuery()),
        ("&", LogQuery()),
        ("raw", LogQuery(raw=True)),
        ("raw=", LogQuery(raw=True)),
        ("raw=1", LogQuery(raw=True)),
        ("raw=true", LogQuery(raw=True)),
        ("raw=0", LogQuery(raw=False)),
        ("tail=50", LogQuery(tail=50)),
        ("tail=0", LogQuery(tail=0)),
        ("tail=007", LogQuery(tail=7)),
        (f"tail={MAX_LINE_NUMBER}", LogQuery(tail=MAX_LINE_NUMBER)),
        ("lines=5", LogQuery(lines=(5, 5))),
        ("lines=5-", LogQuery(lines=(5, TO_END))),
        ("lines=5-10", LogQuery(lines=(5, 10))),
        ("lines=7-7", LogQuery(lines=(7, 7))),
        (f"lines=1-{MAX_LINE_NUMBER}", LogQuery(lines=(1, MAX_LINE_NUMBER))),
        ("ansi=strip", LogQuery(ansi_strip=True)),
        ("grep=error", LogQuery(grep="error")),
        ("grep=exit+code", LogQuery(grep="exit code")),  # form encoding: + is a space
        ("grep=%2B%2B", LogQuery(grep="++")),
        ("grep=%E2%9C%93", LogQuery(grep="✓")),
        ("grep=a%3Db%26c", LogQuery(grep="a=b&c")),
        ("grep=" + "x" * MAX_GREP_CHARS, LogQuery(grep="x" * MAX_GREP_CHARS)),
        ("tail=50&ansi=strip", LogQuery(tail=50, ansi_strip=True)),
        ("tail=5&", LogQuery(tail=5)),
        (
            "raw&lines=10-20&tail=3&ansi=strip&grep=fail",
            LogQuery(raw=True, lines=(10, 20), tail=3, ansi_strip=True, grep="fail"),
        ),
    ],
)
def test_parse_accepts(query: str, expected: LogQuery) -> None:
    assert parse_log_query(query) == expected


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("foo=1", "foo"),
        ("tail=5&head=3", "head"),
        ("Tail=5", "Tail"),
        ("tail", "tail"),
        ("tail=", "tail"),
        ("tail=-1", "tail"),
        ("tail=+1", "tail"),  # "+" decodes to a space
        ("tail=abc", "tail"),
        ("tail=1.5", "tail"),
        ("tail=1e3", "tail"),
        ("tail=%203", "tail"),
        ("tail=\u0663", "tail"),  # ARABIC-INDIC DIGIT THREE: not an ASCII number
        (f"tail={MAX_LINE_NUMBER + 1}", "tail"),
        ("tail=" + "9" * 4000, "tail"),
        ("tail=1&tail=2", "tail"),
        ("lines=", "lines"),
        ("lines=0", "lines"),
        ("lines=0-5", "lines"),
        ("lines=5-3", "lines"),
        ("lines=-5", "lines"),
        ("lines=a-b", "lines"),
        ("lines=1-2-3", "lines"),
        ("lines=1-0", "lines"),
        ("lines=1:5", "lines"),
        (f"lines=1-{MAX_LINE_NUMBER + 1}", "lines"),
        ("ansi=keep", "ansi"),
        ("ansi=STRIP", "ansi"),
        ("ansi", "ansi"),
        ("grep=", "grep"),
        ("grep=" + "x" * (MAX_GREP_CHARS + 1), "grep"),
        ("grep=a%0Ab", "grep"),
        ("raw=maybe", "raw"),
        ("raw&raw", "raw"),
        ("i", "grep"),  # ignore case of what? i goes with grep
        ("tail=5&i", "grep"),
        ("grep=x&i=maybe", "i="),
    ],
)
def test_parse_rejects_naming_the_option(query: str, named: str) -> None:
    with pytest.raises(BadOption) as caught:
        parse_log_query(query)
    assert named in caught.value.message
    assert caught.value.http_status == 400
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "query",
    ["grep=%FF", "%FF=1", "x" * (MAX_LOG_QUERY_CHARS + 1), "\x1b[31m=1"],
)
def test_parse_rejects_malformed_queries(query: str) -> None:
    with pytest.raises(BadOption) as caught:
        parse_log_query(query)
    assert "\x1b" not in caught.value.message  # a client's bytes come back escaped


def test_unknown_option_message_lists_known_ones() -> None:
    with pytest.raises(BadOption) as caught:
        parse_log_query("head=5")
    assert caught.value.message == (
        "unknown option 'head': known options are raw, tail, lines, ansi, grep, i, meta"
    )


def test_transforms() -> None:
    assert not LogQuery().transforms
    assert not LogQuery(raw=True).transforms
    assert LogQuery(tail=0).transforms
    assert LogQuery(lines=(1, 1)).transforms
    assert LogQuery(ansi_strip=True).transforms
    assert LogQuery(grep="x").transforms


@pytest.mark.parametrize(
    "fields",
    [{"tail": -1}, {"lines": (0, 5)}, {"lines": (5, 3)}, {"grep": ""}, {"grep": "a\nb"}],
)
def test_log_query_rejects_impossible_values(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LogQuery(**fields)  # type: ignore[arg-type]


# --- apply -------------------------------------------------------------------


def test_no_transform_returns_the_body_itself() -> None:
    assert apply(LOG, LogQuery()) is LOG
    assert apply(LOG, LogQuery(raw=True)) is LOG


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ("tail=1", LAST),
        ("tail=2", b"Tests: 1 failed, 41 passed\n" + LAST),
        ("tail=7", LOG),
        ("tail=1000", LOG),
        ("tail=0", b""),
        ("lines=1", b"Run actions/checkout@v4\n"),
        ("lines=3-4", b"added 812 packages\n\x1b[31merror\x1b[0m: test failed\n"),
        ("lines=6-", b"Tests: 1 failed, 41 passed\n" + LAST),
        ("lines=7", LAST),
        ("lines=6-1000", b"Tests: 1 failed, 41 passed\n" + LAST),
        ("lines=8", b""),
        ("lines=8-", b""),
        ("lines=100-200", b""),
        ("lines=1-", LOG),
        ("lines=2-5&tail=2", b"\x1b[31merror\x1b[0m: test failed\n  at foo.test.js:12\n"),
        ("lines=2-3&tail=10", b"\x1b[36;1mnpm ci\x1b[0m\nadded 812 packages\n"),
        (
            "ansi=strip",
            b"Run actions/checkout@v4\nnpm ci\nadded 812 packages\nerror: test failed\n"
            b"  at foo.test.js:12\nTests: 1 failed, 41 passed\n" + LAST_STRIPPED,
        ),
        ("tail=2&ansi=strip", b"Tests: 1 failed, 41 passed\n" + LAST_STRIPPED),
        ("lines=2&ansi=strip", b"npm ci\n"),
        # grep: numbered like grep -n, each record ending in a newline.
        ("grep=failed", b"4:\x1b[31merror\x1b[0m: test failed\n6:Tests: 1 failed, 41 passed\n"),
        ("grep=failed&ansi=strip", b"4:error: test failed\n6:Tests: 1 failed, 41 passed\n"),
        ("grep=error:", b"4:\x1b[31merror\x1b[0m: test failed\n"),  # matched across an escape
        ("grep=[31m", b""),  # escapes are not searched
        ("grep=Error", b"7:" + LAST + b"\n"),
        ("grep=exit+code&ansi=strip", b"7:" + LAST_STRIPPED + b"\n"),
        ("grep=ERROR", b""),  # case-sensitive
        ("grep=nothing+here", b""),
        (
            "tail=3&grep=e&ansi=strip",
            b"5:  at foo.test.js:12\n6:Tests: 1 failed, 41 passed\n7:" + LAST_STRIPPED + b"\n",
        ),
        ("lines=2-4&grep=a", b"3:added 812 packages\n4:\x1b[31merror\x1b[0m: test failed\n"),
        ("lines=1-6&tail=2&grep=t", b"5:  at foo.test.js:12\n6:Tests: 1 failed, 41 passed\n"),
        ("lines=8-&grep=e", b""),
        ("tail=0&grep=e", b""),
        ("raw&tail=1&ansi=strip", LAST_STRIPPED),
    ],
)
def test_apply(query: str, answer: bytes) -> None:
    assert read(LOG, query) == answer


@pytest.mark.parametrize(
    ("body", "query", "answer"),
    [
        (b"", "tail=5", b""),
        (b"", "lines=1", b""),
        (b"", "lines=1-", b""),
        (b"", "ansi=strip", b""),
        (b"", "grep=x", b""),
        (b"\n", "tail=1", b"\n"),
        (b"\n", "lines=1", b"\n"),
        (b"\n", "lines=2", b""),
        (b"\n\n\n", "tail=2", b"\n\n"),
        (b"\n\n\n", "lines=2-", b"\n\n"),
        (b"a\nb\n", "tail=1", b"b\n"),
        (b"a\nb\n", "lines=2-", b"b\n"),
        (b"a\nb\n", "lines=3", b""),
        (b"a\nb", "tail=1", b"b"),
        (b"a\nb", "lines=2", b"b"),
        (b"a\nb", "grep=b", b"2:b\n"),
        (b"a\r\nb\r\n", "tail=1", b"b\r\n"),  # CRLF: \r stays part of the line
        (b"a\r\nb\r\n", "grep=b", b"2:b\r\n"),
        (b"x\n\nx\n", "grep=x", b"1:x\n3:x\n"),
        (b"xx xx\n", "grep=x", b"1:xx xx\n"),  # one record per line, however many hits
        (b"\xff\xfe bad\n\xc3 utf8\n", "grep=utf8", b"2:\xc3 utf8\n"),  # bytes kept exactly
        (b"\x1b]0;title\x07ok\n", "ansi=strip", b"ok\n"),
        (b"\x1b]0;unterminated\nok\n", "ansi=strip", b"\nok\n"),  # a newline ends it
        (b"\x1b]0;unterminated\nok\n", "grep=ok", b"2:ok\n"),
        (b"a\x1b[31mb\nab\n", "grep=ab", b"1:a\x1b[31mb\n2:ab\n"),
    ],
)
def test_apply_edges(body: bytes, query: str, answer: bytes) -> None:
    assert read(body, query) == answer


def test_grep_numbers_lines_of_the_whole_paste() -> None:
    body = b"".join(
        b"line %d%s\n" % (n, b" FAIL" if n % 1000 == 0 else b"") for n in range(1, 5001)
    )
    assert read(body, "grep=FAIL") == b"".join(
        b"%d:line %d FAIL\n" % (n, n) for n in range(1000, 5001, 1000)
    )
    assert read(body, "lines=2500-&grep=FAIL") == (
        b"3000:line 3000 FAIL\n4000:line 4000 FAIL\n5000:line 5000 FAIL\n"
    )
    # tail applies to the matches: the last two failures, wherever they are.
    assert read(body, "tail=2&grep=FAIL") == b"4000:line 4000 FAIL\n5000:line 5000 FAIL\n"
    assert read(body, "grep=FAIL&tail=2") == read(body, "tail=2&grep=FAIL")  # order in the URL is free
    assert read(body, "lines=1-3500&grep=FAIL&tail=1") == b"3000:line 3000 FAIL\n"


def test_grep_ignores_case_with_i() -> None:
    log = b"ok\nERROR: disk\n\x1b[31mError\x1b[0m: net\nerror: dns\nfine\n\xc3\x84RGER\n"
    assert read(log, "grep=error") == b"4:error: dns\n"
    assert read(log, "grep=error&i") == b"2:ERROR: disk\n3:\x1b[31mError\x1b[0m: net\n4:error: dns\n"
    assert read(log, "grep=error&i&ansi=strip&tail=2") == b"3:Error: net\n4:error: dns\n"
    assert read(log, "grep=%C3%A4rger&i") == b"6:\xc3\x84RGER\n"  # beyond ASCII too
    assert read(log, "grep=ERROR&i=0") == b"2:ERROR: disk\n"


def test_big_bodies_take_linear_time() -> None:
    newlines = b"\n" * (10 * 1024 * 1024)
    lines = b"".join(b"\x1b[32mok\x1b[0m %d\n" % n for n in range(MAX_LINE_NUMBER))
    with hang_guard():
        assert read(newlines, f"tail={MAX_LINE_NUMBER}") == b"\n" * MAX_LINE_NUMBER
        from_line = read(newlines, f"lines={MAX_LINE_NUMBER}-")
        assert from_line == b"\n" * (len(newlines) - MAX_LINE_NUMBER + 1)
        assert read(newlines, "grep=x") == b""
        assert read(lines, "grep=ok+999999&ansi=strip") == b"1000000:ok 999999\n"
        assert read(lines, "grep=ok+999999") == b"1000000:\x1b[32mok\x1b[0m 999999\n"
        assert read(lines, "tail=2&ansi=strip") == b"ok 999998\nok 999999\n"
        assert len(read(lines, "grep=ok")) > len(lines)
        assert read(b"x" * (10 * 1024 * 1024), "grep=" + "x" * MAX_GREP_CHARS) != b""


# --- properties --------------------------------------------------------------

BODY = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [b"a", b"b", b"ab", b"\n", b"\r", b"\x1b[31m", b"\x1b]0;t\x07", b"\x1b", b"\xff", b" "]
        ),
        max_size=60,
    ).map(b"".join),
)
LINE_NUMBER = st.integers(min_value=1, max_value=40)


@st.composite
def queries(draw: st.DrawFn) -> LogQuery:
    lines = None
    if draw(st.booleans()):
        first = draw(LINE_NUMBER)
        last = draw(st.one_of(st.just(TO_END), st.integers(min_value=first, max_value=first + 40)))
        lines = (first, last)
    return LogQuery(
        raw=draw(st.booleans()),
        tail=draw(st.none() | st.integers(min_value=0, max_value=40)),
        lines=lines,
        ansi_strip=draw(st.booleans()),
        grep=draw(st.none() | st.sampled_from(["a", "b", "ab", "a b", " ", "\r", "\xff", "t"])),
    )


def reference(body: bytes, query: LogQuery) -> bytes:
    """The same answer, the slow and obvious way: a list of numbered lines."""
    pieces = body.split(b"\n")
    numbered = [(n, piece + b"\n") for n, piece in enumerate(pieces[:-1], start=1)]
    if pieces[-1]:
        numbered.append((len(pieces), pieces[-1]))
    if query.lines is not None:
        numbered = [(n, line) for n, line in numbered if query.lines[0] <= n <= query.lines[1]]
    if query.tail is not None:
        numbered = numbered[-query.tail :] if query.tail else []
    if query.grep is None:
        text = b"".join(line for _, line in numbered)
        return strip_ansi(text) if query.ansi_strip else text
    answer = b""
    for n, line in numbered:
        content = line[:-1] if line.endswith(b"\n") else line
        if query.grep.encode() in strip_ansi(content):
            answer += b"%d:%s\n" % (n, strip_ansi(content) if query.ansi_strip else content)
    return answer


@settings(max_examples=1000)
@given(BODY, queries())
def test_apply_never_raises_and_matches_the_reference(body: bytes, query: LogQuery) -> None:
    assert apply(body, query) == reference(body, query)


@given(BODY, st.integers(min_value=0, max_value=MAX_LINE_NUMBER))
def test_tail_is_a_suffix_of_at_most_n_lines(body: bytes, count: int) -> None:
    answer = apply(body, LogQuery(tail=count))
    assert body.endswith(answer)
    lines = answer.count(b"\n") + (0 if answer.endswith(b"\n") or not answer else 1)
    assert lines <= count
    if lines < count:
        assert answer == body
    elif 0 < len(answer) < len(body):  # the answer starts at a line start
        assert body[len(body) - len(answer) - 1] == ord("\n")


@given(BODY, LINE_NUMBER, LINE_NUMBER)
def test_lines_are_one_contiguous_piece(body: bytes, first: int, length: int) -> None:
    answer = apply(body, LogQuery(lines=(first, first + length - 1)))
    assert answer in body
    whole = apply(body, LogQuery(lines=(first, TO_END)))
    assert whole.startswith(answer)
    assert body.endswith(whole)


@given(st.text(max_size=600))
def test_parse_never_raises_anything_but_bad_option(query: str) -> None:
    try:
        parse_log_query(query)
    except BadOption:
        pass
