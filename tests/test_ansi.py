"""Tier 1: ANSI escape handling for CI logs in the sans-IO core. No I/O.

Judged by what a reader sees: the text of each line, the style of each run of
it, and the exact bytes ``?ansi=strip`` sends.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncpaste.core.ansi import (
    MAX_REMEMBERED_SGRS,
    MAX_SGR_PARAM_CHARS,
    PALETTE_256,
    AnsiState,
    Style,
    strip_ansi,
)

from conftest import hang_guard

# A hostile input must finish in linear time; this bounds a hang, it does not
# measure speed (each case takes well under a second when the work is linear).
# Big enough that quadratic work would blow the guard.
HOSTILE_CHARS = 1024 * 1024

ESC = "\x1b"
CSI = ESC + "["

# xterm's defaults, written out here rather than taken from the module so the
# tests hold the palette to an independent spec.
BLACK, RED, GREEN, YELLOW = "#000000", "#cd0000", "#00cd00", "#cdcd00"
BLUE, MAGENTA, CYAN, WHITE = "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5"
BRIGHT = ["#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff"]
BASIC = [BLACK, RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, WHITE]



def spans(*lines: str) -> list[list[tuple[Style, str]]]:
    """The spans of each line, fed in order through one state."""
    state = AnsiState()
    return [state.spans(line) for line in lines]


def one(line: str) -> list[tuple[Style, str]]:
    return AnsiState().spans(line)


def text_of(result: list[tuple[Style, str]]) -> str:
    return "".join(text for _, text in result)


# --- SGR: one sequence before "x" gives this style --------------------------

SGR_CASES = [
    ("0", Style()),
    ("", Style()),
    ("1", Style(bold=True)),
    ("2", Style(dim=True)),
    ("3", Style(italic=True)),
    ("4", Style(underline=True)),
    ("21", Style(underline=True)),
    ("7", Style(inverse=True)),
    ("1;2;3;4;7", Style(bold=True, dim=True, italic=True, underline=True, inverse=True)),
    ("1;2;3;4;7;22", Style(italic=True, underline=True, inverse=True)),
    ("1;3;23", Style(bold=True)),
    ("4;24", Style()),
    ("7;27", Style()),
    ("1;31;42;0", Style()),
    ("1;;31", Style(fg=RED)),  # an empty parameter is 0, a reset
    ("001;0031", Style(fg=RED, bold=True)),  # leading zeros
    ("31;39", Style()),
    ("41;49", Style()),
    ("31;32", Style(fg=GREEN)),  # the last colour wins
    ("5;8;9", Style()),  # blink, conceal, strike: no Style field, no effect
    ("4:3", Style(underline=True)),  # curly underline (kitty, VTE)
    ("4;4:0", Style()),
    ("58;5;1", Style()),  # underline colour: its index is not read as bold
    ("58:2::1:2:3;1", Style(bold=True)),
    ("1:5", Style(bold=True)),  # sub-parameters after a plain code are ignored
    *[(str(30 + i), Style(fg=BASIC[i])) for i in range(8)],
    *[(str(40 + i), Style(bg=BASIC[i])) for i in range(8)],
    *[(str(90 + i), Style(fg=BRIGHT[i])) for i in range(8)],
    *[(str(100 + i), Style(bg=BRIGHT[i])) for i in range(8)],
    # 256 colours: the 16 basic ones, the 6x6x6 cube, the grey ramp.
    ("38;5;1", Style(fg=RED)),
    ("38;5;9", Style(fg="#ff0000")),
    ("38;5;15", Style(fg="#ffffff")),
    ("38;5;16", Style(fg="#000000")),
    ("38;5;17", Style(fg="#00005f")),
    ("38;5;21", Style(fg="#0000ff")),
    ("38;5;67", Style(fg="#5f87af")),
    ("38;5;196", Style(fg="#ff0000")),
    ("38;5;208", Style(fg="#ff8700")),
    ("38;5;231", Style(fg="#ffffff")),
    ("38;5;232", Style(fg="#080808")),
    ("38;5;244", Style(fg="#808080")),
    ("38;5;255", Style(fg="#eeeeee")),
    ("48;5;4", Style(bg=BLUE)),
    ("48;5;226", Style(bg="#ffff00")),
    ("48;5;240", Style(bg="#585858")),
    ("38;5;1;48;5;2;1", Style(fg=RED, bg=GREEN, bold=True)),
    # Truecolour, with semicolons and in the colon forms.
    ("38;2;255;128;0", Style(fg="#ff8000")),
    ("48;2;1;2;3", Style(bg="#010203")),
    ("38;2;10;20;30;48;2;40;50;60;1", Style(fg="#0a141e", bg="#28323c", bold=True)),
    ("38:2::255:128:0", Style(fg="#ff8000")),
    ("38:2:0:255:128:0", Style(fg="#ff8000")),  # colour-space id 0
    ("38:2:255:128:0", Style(fg="#ff8000")),  # the common form without an id
    ("48:2::1:2:3", Style(bg="#010203")),
    ("38:5:196", Style(fg="#ff0000")),
    ("48:5:21;1", Style(bg="#0000ff", bold=True)),
    ("38:2::1:2:3:9:9", Style(fg="#010203")),  # T.416 tolerance fields ignored
    # Malformed colours change nothing; what follows still applies.
    ("31;38;5;256", Style(fg=RED)),
    ("31;38;5;256;1", Style(fg=RED, bold=True)),
    ("31;38;2;256;0;0;1", Style(fg=RED, bold=True)),
    ("31;38;5", Style(fg=RED)),
    ("31;38;2;1;2", Style(fg=RED)),
    ("31;38", Style(fg=RED)),
    ("31;38;9;1", Style(fg=RED, bold=True)),  # unknown mode: just skipped
    ("31;38:2:1:2", Style(fg=RED)),
    ("31;38:7:1", Style(fg=RED)),
    ("31;38;5;99999999999999999999", Style(fg=RED)),
    ("31;99999999999999999999999999999", Style(fg=RED)),
]


@pytest.mark.parametrize(("params", "style"), SGR_CASES)
def test_sgr_sets_style(params: str, style: Style) -> None:
    assert one(f"{CSI}{params}mx") == [(style, "x")]


@pytest.mark.parametrize(
    ("params", "style"),
    [
        ("0", Style()),
        ("", Style()),
        ("22", Style(italic=True, underline=True, inverse=True, fg=RED, bg=GREEN)),
        ("23", Style(bold=True, dim=True, underline=True, inverse=True, fg=RED, bg=GREEN)),
        ("24", Style(bold=True, dim=True, italic=True, inverse=True, fg=RED, bg=GREEN)),
        ("27", Style(bold=True, dim=True, italic=True, underline=True, fg=RED, bg=GREEN)),
        ("39", Style(bold=True, dim=True, italic=True, underline=True, inverse=True, bg=GREEN)),
        ("49", Style(bold=True, dim=True, italic=True, underline=True, inverse=True, fg=RED)),
    ],
)
def test_each_reset_clears_only_its_attribute(params: str, style: Style) -> None:
    everything = f"{CSI}1;2;3;4;7;31;42m"
    assert one(f"{everything}a{CSI}{params}mb")[-1] == (style, "b")


def test_full_reset_escape_clears_style() -> None:
    assert one(f"{CSI}1;31ma{ESC}cb") == [(Style(fg=RED, bold=True), "a"), (Style(), "b")]


def test_palette_is_xterms() -> None:
    assert len(PALETTE_256) == 256
    assert list(PALETTE_256[:8]) == BASIC
    assert list(PALETTE_256[8:16]) == BRIGHT
    levels = [0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF]
    for index in range(16, 232):
        r, g, b = (index - 16) // 36, (index - 16) // 6 % 6, (index - 16) % 6
        assert PALETTE_256[index] == f"#{levels[r]:02x}{levels[g]:02x}{levels[b]:02x}"
    for index in range(232, 256):
        grey = 8 + 10 * (index - 232)
        assert PALETTE_256[index] == f"#{grey:02x}{grey:02x}{grey:02x}"


# --- css ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "css"),
    [
        (Style(), ""),
        (Style(fg=RED), "color:#cd0000"),
        (Style(bg=BLUE), "background-color:#0000ee"),
        (Style(fg=RED, bold=True), "color:#cd0000;font-weight:bold"),
        (Style(dim=True), "opacity:0.5"),
        (Style(italic=True), "font-style:italic"),
        (Style(underline=True), "text-decoration:underline"),
        (
            Style(fg=RED, bg=BLUE, bold=True, dim=True, italic=True, underline=True),
            "color:#cd0000;background-color:#0000ee;font-weight:bold;opacity:0.5;"
            "font-style:italic;text-decoration:underline",
        ),
        (Style(inverse=True), "color:var(--bg);background-color:var(--fg)"),
        (Style(fg=RED, inverse=True), "color:var(--bg);background-color:#cd0000"),
        (Style(bg=BLUE, inverse=True), "color:#0000ee;background-color:var(--fg)"),
        (Style(fg=RED, bg=BLUE, inverse=True), "color:#0000ee;background-color:#cd0000"),
    ],
)
def test_css(style: Style, css: str) -> None:
    assert style.css() == css


# --- spans: state, merging, carriage returns --------------------------------


def test_plain_line_is_one_default_span() -> None:
    assert one("hello\tworld ✓") == [(Style(), "hello\tworld ✓")]


def test_empty_line_and_escape_only_line_have_no_spans() -> None:
    assert one("") == []
    assert one(f"{CSI}31m{CSI}2K") == []


def test_colour_changes_split_spans() -> None:
    assert one(f"ok {CSI}31mFAIL{CSI}0m done") == [
        (Style(), "ok "),
        (Style(fg=RED), "FAIL"),
        (Style(), " done"),
    ]


def test_state_carries_across_lines() -> None:
    assert spans(f"a{CSI}32mb", "c", f"d{CSI}1me", f"{CSI}0mf") == [
        [(Style(), "a"), (Style(fg=GREEN), "b")],
        [(Style(fg=GREEN), "c")],
        [(Style(fg=GREEN), "d"), (Style(fg=GREEN, bold=True), "e")],
        [(Style(), "f")],
    ]


def test_style_between_lines_is_exposed() -> None:
    state = AnsiState()
    assert state.style == Style()
    state.spans(f"{CSI}1;44mx")
    assert state.style == Style(bg=BLUE, bold=True)
    state.reset()
    assert state.style == Style()


def test_many_distinct_colours_stay_right() -> None:
    """A truecolour gradient: more distinct SGRs than the state remembers."""
    count = MAX_REMEMBERED_SGRS * 3
    state = AnsiState()
    for _ in range(2):  # the second pass meets remembered and forgotten ones
        line = "".join(f"{CSI}38;2;{n % 256};{n // 256};7m{n % 10}" for n in range(count))
        assert state.spans(line) == [
            (Style(fg=f"#{n % 256:02x}{n // 256:02x}07"), str(n % 10)) for n in range(count)
        ]


def test_adjacent_spans_with_same_style_merge() -> None:
    line = f"{CSI}31ma{CSI}31mb{CSI}1m{CSI}22mc{CSI}1A\x00d{ESC}]0;t\x07e"
    assert one(line) == [(Style(fg=RED), "abcde")]


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("10%\r50%\r100%", "100%"),
        ("abc\r", "abc"),
        ("abc\r\r", "abc"),
        ("\rabc", "abc"),
        ("abc\r\rdef", "def"),
        ("downloading\r\x1b[Kdone", "done"),
        ("abc\r\x1b[K", "abc"),  # nothing followed the erase: the last state with text
        ("abc\r\x07", "abc"),  # a control is not content
        ("[###   ]\r[######]\r\n", "[######]"),  # \n is a control inside one line
    ],
)
def test_carriage_return_keeps_final_state(line: str, text: str) -> None:
    assert text_of(one(line)) == text


def test_style_set_before_carriage_return_still_applies() -> None:
    assert one(f"{CSI}33m10%\r100%") == [(Style(fg=YELLOW), "100%")]
    assert one(f"a{CSI}1m\r{CSI}31mb") == [(Style(fg=RED, bold=True), "b")]


# --- spans: everything that is not SGR is dropped ---------------------------

DROPPED = [
    f"{CSI}1A",  # cursor up
    f"{CSI}10;20H",  # cursor position
    f"{CSI}2K",  # erase line
    f"{CSI}K",
    f"{CSI}2J",  # erase screen
    f"{CSI}?25l",  # hide cursor
    f"{CSI}?2004h",  # bracketed paste
    f"{CSI}>4;2m",  # xterm modifyOtherKeys: private marker, not an SGR
    f"{CSI}?1m",
    f"{CSI}1 q",  # cursor shape (intermediate byte)
    f"{CSI}1 m",  # intermediate before m: not an SGR
    f"{ESC}]0;window title\x07",
    f"{ESC}]2;title{ESC}\\",
    f"{ESC}]8;;https://example.com/x?y=1{ESC}\\",  # OSC 8 hyperlink open (ST)
    f"{ESC}]8;;{ESC}\\",  # and close
    f"{ESC}]8;id=1;https://example.com\x07",  # with BEL
    f"{ESC}]1337;SetMark\x07",
    f"{ESC}Pq#0;2;0;0;0{ESC}\\",  # DCS (sixel)
    f"{ESC}_Gf=100;AAAA{ESC}\\",  # APC (kitty graphics)
    f"{ESC}^privacy{ESC}\\",  # PM
    f"{ESC}Xstring{ESC}\\",  # SOS
    f"{ESC}(B",  # charset selects
    f"{ESC})0",
    f"{ESC}(0",
    f"{ESC}#8",
    f"{ESC}%G",
    f"{ESC}7",  # save / restore cursor
    f"{ESC}8",
    f"{ESC}=",  # keypad modes
    f"{ESC}>",
    f"{ESC}M",  # reverse index
    f"{ESC}D",
    "\x00",
    "\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x0e",
    "\x0f",
    "\x18",
    "\x1a",
    "\x7f",
    "\x85",  # C1 controls
    "\x9b",
]


@pytest.mark.parametrize("sequence", DROPPED)
def test_other_sequences_and_controls_are_dropped(sequence: str) -> None:
    assert one(f"{CSI}31ma{sequence}b") == [(Style(fg=RED), "ab")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Unterminated CSI at the end of the line: dropped, no effect.
        (f"a{CSI}31", [(Style(), "a")]),
        (f"a{CSI}", [(Style(), "a")]),
        # A CSI cut short by a character that cannot continue it: the CSI is
        # dropped, the character is read as text.
        (f"{CSI}31é", [(Style(), "é")]),
        (f"{CSI}31\x18mx", [(Style(), "mx")]),  # CAN cancels
        (f"{CSI}31\x1amx", [(Style(), "mx")]),  # SUB cancels
        (f"{CSI}31{CSI}1mx", [(Style(bold=True), "x")]),  # ESC starts anew
        (f"{CSI}1 2mx", [(Style(), "x")]),  # parameter after intermediate: ignored
        # An unterminated OSC swallows the rest of its line only.
        (f"a{ESC}]8;;https://example.com link", [(Style(), "a")]),
        (f"{ESC}]0;title{CSI}31mx", [(Style(fg=RED), "x")]),  # ESC ends the OSC
        (f"{ESC}]0;title\x18x", [(Style(), "x")]),
        (f"{ESC}]0;ti\ttle\rx\x07y", [(Style(), "y")]),
        # A lone ESC: dropped; what follows it is read afresh.
        (f"a{ESC}", [(Style(), "a")]),
        (f"{ESC}{ESC}[31mx", [(Style(fg=RED), "x")]),
        (f"{ESC}\x01x", [(Style(), "x")]),
        # ESC followed by something that is no final byte.
        (f"{ESC}é", [(Style(), "é")]),
        (f"{ESC}(é", [(Style(), "é")]),
        (f"{ESC}\tx", [(Style(), "\tx")]),
        (f"{CSI}38;5;1;48;5mx", [(Style(fg=RED), "x")]),
    ],
)
def test_malformed_sequences(line: str, expected: list[tuple[Style, str]]) -> None:
    assert one(line) == expected


def test_unterminated_osc_does_not_leak_into_next_line() -> None:
    assert spans(f"{ESC}]8;;https://x", "next") == [[], [(Style(), "next")]]


def test_osc8_hyperlink_keeps_its_text() -> None:
    line = f"see {ESC}]8;;https://example.com{ESC}\\the docs{ESC}]8;;{ESC}\\ here"
    assert one(line) == [(Style(), "see the docs here")]


def test_long_sgr_is_dropped_without_effect() -> None:
    params = ";".join(["1"] * (MAX_SGR_PARAM_CHARS // 2 + 1))
    assert one(f"{CSI}{params};31mx") == [(Style(), "x")]
    just_fits = "0" * (MAX_SGR_PARAM_CHARS - 2) + "31"
    assert one(f"{CSI}{just_fits}mx") == [(Style(fg=RED), "x")]


@pytest.mark.parametrize(
    "line",
    [
        CSI + "1;" * HOSTILE_CHARS + "31mx",
        CSI + "9" * HOSTILE_CHARS + "mx",
        CSI + "1:" * HOSTILE_CHARS + "mx",
        CSI + "1;" * HOSTILE_CHARS + "x",  # never terminated
        (CSI + "1") * HOSTILE_CHARS + "x",
        ESC * HOSTILE_CHARS + "x",
        (ESC + "]") * HOSTILE_CHARS + "x",
        ESC + "]" + "a" * HOSTILE_CHARS + "x",
        "\r" * HOSTILE_CHARS + "x",
        ("a\x00") * HOSTILE_CHARS + "x",
        (CSI + "31ma" + CSI + "32mb") * (HOSTILE_CHARS // 8) + "x",
    ],
)
def test_hostile_lines_take_linear_time(line: str) -> None:
    with hang_guard():
        result = one(line)
    assert ESC not in text_of(result)
    assert text_of(result).endswith("x") or text_of(result) == ""


# --- strip_ansi --------------------------------------------------------------

STRIP_CASES = [
    (b"", b""),
    (b"plain\ttext\r\n", b"plain\ttext\r\n"),
    (b"\x1b[31mred\x1b[0m\n", b"red\n"),
    (b"\x1b[1;38;2;255;0;0mX\x1b[m", b"X"),
    (b"\x1b[38:2::1:2:3mX", b"X"),
    (b"10%\r\x1b[2K50%\r\x1b[2K100%\r\n", b"10%\r50%\r100%\r\n"),
    (b"\x1b]8;;https://e.com\x1b\\link\x1b]8;;\x1b\\", b"link"),
    (b"\x1b]0;title\x07after", b"after"),
    (b"\x1b]0;unterminated\nnext line\n", b"\nnext line\n"),  # a newline ends it
    (b"\x1b]0;ti\rtle\x07x", b"x"),
    (b"\x1b(Bcharset\x1b)0", b"charset"),
    (b"\x1b7saved\x1b8", b"saved"),
    (b"\x1b[?25lhidden cursor\x1b[?25h", b"hidden cursor"),
    (b"lone\x1b", b"lone"),
    (b"\x1b\x1b[31mx", b"x"),
    (b"\x1b[31\xc3\xa9", b"\xc3\xa9"),  # non-ASCII ends a CSI and is kept
    (b"\x1b]0;\xc3\x9c title\x07x", b"x"),  # UTF-8 inside an OSC
    (b"\xe2\x80\xba \xc3\x9c \x9b\x9c", b"\xe2\x80\xba \xc3\x9c \x9b\x9c"),  # no C1 meaning
    (b"\x1b[31\x18x", b"\x18x"),  # CAN cancels and is kept, as other controls are
    (b"bell\x07 nul\x00 bs\x08", b"bell\x07 nul\x00 bs\x08"),
    (b"\x1bPq#0\x1b\\sixel", b"sixel"),
    (b"\xff\xfe\x1b[1m\xff", b"\xff\xfe\xff"),  # not UTF-8: still exact bytes
]


@pytest.mark.parametrize(("data", "stripped"), STRIP_CASES)
def test_strip_ansi(data: bytes, stripped: bytes) -> None:
    assert strip_ansi(data) == stripped


@pytest.mark.parametrize(
    "data",
    [
        b"\x1b[" + b"1;" * HOSTILE_CHARS + b"m",
        b"\x1b[" + b"1;" * HOSTILE_CHARS,
        b"\x1b" * HOSTILE_CHARS,
        b"\x1b]" * HOSTILE_CHARS,
        b"\x1b]" + b"a" * HOSTILE_CHARS,
        (b"\x1b]0;" + b"a" * 100 + b"\n") * (HOSTILE_CHARS // 100),
        (b"\x1b[31mab") * HOSTILE_CHARS,
    ],
)
def test_strip_ansi_hostile_input_takes_linear_time(data: bytes) -> None:
    with hang_guard():
        stripped = strip_ansi(data)
    assert b"\x1b" not in stripped


# --- properties --------------------------------------------------------------

# Pieces that make escape sequences likely: hypothesis rarely writes "\x1b[31m"
# from arbitrary characters.
ESCAPE_PIECES = st.sampled_from(
    [ESC, "[", "]", "\\", "\x07", "m", "1", "2", "5", "38", "48", ";", ":", "?", ">", " ",
     "(", "B", "P", "_", "c", "\t", "\r", "\x18", "é", "✓", "\x9b", "x", "8;;", "H", "K"]
)
ESCAPE_HEAVY = st.lists(st.one_of(ESCAPE_PIECES, st.text(max_size=4)), max_size=40).map("".join)
LINE = st.one_of(st.text(), ESCAPE_HEAVY)


def _visible(text: str) -> str:
    """What a line shows of ``text``: its controls other than TAB dropped."""
    return "".join(c for c in text if c == "\t" or not (c < " " or "\x7f" <= c <= "\x9f"))


@settings(max_examples=500)
@given(st.lists(LINE, max_size=5))
def test_spans_never_raise_and_never_show_escapes(lines: list[str]) -> None:
    state = AnsiState()
    for line in lines:
        result = state.spans(line)
        assert all(text for _, text in result)
        assert all(a[0] != b[0] for a, b in zip(result, result[1:]))
        shown = text_of(result)
        assert ESC not in shown
        assert shown == _visible(shown)
        for style, _ in result:
            style.css()


@settings(max_examples=500)
@given(LINE.filter(lambda line: "\r" not in line and "\n" not in line))
def test_spans_show_what_strip_ansi_keeps(line: str) -> None:
    """Both delimit sequences the same way; spans also drop controls."""
    stripped = strip_ansi(line.encode("utf-8")).decode("utf-8")
    assert text_of(one(line)) == _visible(stripped)


PLAIN = st.text().map(_visible).filter(lambda text: ESC not in text)
COMPLETE_SEQUENCES = st.sampled_from(
    [f"{CSI}31m", f"{CSI}0m", f"{CSI}38;5;208m", f"{CSI}48:2::1:2:3m", f"{CSI}2K", f"{CSI}1A",
     f"{CSI}?25l", f"{ESC}]8;;https://x{ESC}\\", f"{ESC}]0;t\x07", f"{ESC}(B", f"{ESC}7", f"{CSI}m"]
)


@given(st.lists(st.tuples(PLAIN, COMPLETE_SEQUENCES)), PLAIN)
def test_complete_sequences_are_invisible(pieces: list[tuple[str, str]], last: str) -> None:
    line = "".join(text + sequence for text, sequence in pieces) + last
    assert text_of(one(line)) == "".join(text for text, _ in pieces) + last


@settings(max_examples=500)
@given(st.one_of(st.binary(), ESCAPE_HEAVY.map(lambda text: text.encode("utf-8"))))
def test_strip_ansi_never_raises_and_leaves_no_escape(data: bytes) -> None:
    stripped = strip_ansi(data)
    assert b"\x1b" not in stripped
    assert len(stripped) <= len(data)
    assert stripped.count(b"\n") == data.count(b"\n")
    assert strip_ansi(stripped) == stripped


@given(st.binary().map(lambda data: data.replace(b"\x1b", b"")))
def test_strip_ansi_without_escape_is_identity(data: bytes) -> None:
    assert strip_ansi(data) == data
