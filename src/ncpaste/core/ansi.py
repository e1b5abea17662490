"""ANSI escape sequences in CI logs: colours for the HTML view, nothing for ``?ansi=strip``.

CI runners record what the build wrote to its terminal, so logs are full of
escape sequences: SGR colours (``ESC [ 31 m``), cursor movement and "erase
line" from progress bars, OSC 8 hyperlinks and window titles, charset selects.
Two consumers need them handled:

* The HTML view renders each line as styled spans. ``AnsiState.spans`` turns
  one line into ``(Style, text)`` pairs and carries the SGR state to the next
  line, as a terminal would: a colour set on line 10 still applies on line 11.
  Every sequence other than SGR is dropped, never shown.
* ``strip_ansi`` removes every escape sequence from raw bytes and leaves all
  other bytes exactly as they were.

How a sequence is delimited (ECMA-48 section 5, as the VT500-family parser
reads it), shared by both so they always agree on what is a sequence:

* ``ESC [`` starts a CSI: parameter bytes 0x30-0x3F, intermediate bytes
  0x20-0x2F, one final byte 0x40-0x7E. Parameter bytes after an intermediate
  are swallowed up to the final byte (the whole sequence is then ignored).
* ``ESC ]`` (OSC), ``ESC P`` (DCS), ``ESC X`` (SOS), ``ESC ^`` (PM) and
  ``ESC _`` (APC) start a control string that ends at BEL or at ST
  (``ESC \\``).
* Any other ``ESC`` takes intermediate bytes 0x20-0x2F and one final byte
  0x30-0x7E (``ESC ( B``, ``ESC 7``, ``ESC c``), or stands alone.
* A sequence also ends, unfinished, just before a byte that cannot continue
  it: in a CSI or an ESC sequence any control character or non-ASCII byte; in
  a control string CAN, SUB, or an ESC not followed by ``\\``. That byte is
  then read as ordinary input. A newline ends every sequence, so an
  unterminated OSC costs at most the rest of its line, never the rest of the
  log.

Of the sequences, ``spans`` interprets SGR (``CSI ... m`` without a private
marker or intermediate) and ``ESC c`` (full reset, which resets the style);
everything else is dropped.

Everything here is one linear pass. Each pattern below begins with ESC and
can only succeed once it has seen ESC (every part after a repetition is
optional), so the first way the regex engine tries is the match and it never
backtracks; each SGR is then interpreted in time bounded by
``MAX_SGR_PARAM_CHARS``.

Palette: the xterm defaults (xterm's ``XTerm-col.ad`` and ``256colres.h``)
for the 16 basic colours, the 6x6x6 colour cube and the 24-step grey ramp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The longest SGR real programs write is a truecolour foreground and
# background plus a few attributes ("1;3;4;38;2;255;255;255;48;2;0;0;0" is 33
# characters). A parameter string longer than this is garbage or an attack:
# the sequence is dropped without effect, so interpreting one SGR is bounded
# work however long the sequence is (finding its end stays linear).
MAX_SGR_PARAM_CHARS = 256
# No SGR number we interpret is above 255 (colour components and palette
# indices) or 107 (bright background codes). Longer digit strings are out of
# range and never reach int(), whose cost grows faster than the digit count.
_MAX_NUMBER_DIGITS = 4
_OUT_OF_RANGE = 10**_MAX_NUMBER_DIGITS
# Distinct (style, SGR) pairs an AnsiState remembers. Ordinary logs use a few
# dozen; a truecolour gradient can use one per character, so past this the
# memory is cleared rather than grown (well under 1 MiB per state: each
# entry holds at most MAX_SGR_PARAM_CHARS of parameters).
MAX_REMEMBERED_SGRS = 1024

# xterm's default 16 colours: black, red, green, yellow, blue, magenta, cyan,
# white, then the bright variants in the same order.
BASIC_COLOURS = (
    "#000000",
    "#cd0000",
    "#00cd00",
    "#cdcd00",
    "#0000ee",
    "#cd00cd",
    "#00cdcd",
    "#e5e5e5",
    "#7f7f7f",
    "#ff0000",
    "#00ff00",
    "#ffff00",
    "#5c5cff",
    "#ff00ff",
    "#00ffff",
    "#ffffff",
)
# Channel intensities of xterm's 6x6x6 cube (indices 16-231: 16 + 36r + 6g + b).
_CUBE_LEVELS = (0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF)


def _hex(red: int, green: int, blue: int) -> str:
    return f"#{red:02x}{green:02x}{blue:02x}"


#: The 256-colour palette ``38;5;n`` indexes: basic colours, cube, grey ramp
#: (indices 232-255: 8, 18, ..., 238 on every channel).
PALETTE_256: tuple[str, ...] = (
    BASIC_COLOURS
    + tuple(_hex(r, g, b) for r in _CUBE_LEVELS for g in _CUBE_LEVELS for b in _CUBE_LEVELS)
    + tuple(_hex(8 + 10 * i, 8 + 10 * i, 8 + 10 * i) for i in range(24))
)

# What one escape sequence is; see the module docstring. The same source is
# compiled for str (spans) and bytes (strip_ansi) so both delimit alike.
_SEQUENCE = (
    r"\x1b(?:"
    r"\[(?P<params>[\x30-\x3f]*)(?P<junk>[\x20-\x3f]*)(?P<final>[\x40-\x7e])?"
    r"|[\]PX^_][^\x07\x18\x1a\x1b\n]*(?:\x07|\x1b\\)?"
    r"|[\x20-\x2f]*[\x30-\x7e]?"
    r")"
)
# C0 controls other than TAB, DEL, and the C1 controls (U+0080-U+009F): none
# of them is visible text. In bytes, 0x80-0x9F are UTF-8 continuation bytes,
# so only the str side treats them as controls.
_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f-\x9f"
_LINE_TOKEN = re.compile(rf"{_SEQUENCE}|(?P<text>[^{_CONTROLS}]+)|(?P<control>[{_CONTROLS}])")
_SEQUENCE_BYTES = re.compile(_SEQUENCE.encode("ascii"))
_SGR_CHARACTERS = "0123456789;:"


@dataclass(frozen=True, slots=True)
class Style:
    """How a run of text looks. Colours are CSS colours (``#rrggbb``); ``None``
    is the page's default foreground or background."""

    fg: str | None = None
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False

    def css(self) -> str:
        """An inline style such as ``color:#cd0000;font-weight:bold``; ``""``
        for the default style. Inverse swaps foreground and background, taking
        the page's ``var(--fg)`` / ``var(--bg)`` for a default colour.

        The colours are trusted: ``AnsiState`` only ever puts ``#rrggbb`` in
        them, never text from the log.
        """
        fg, bg = self.fg, self.bg
        if self.inverse:
            fg, bg = bg or "var(--bg)", fg or "var(--fg)"
        parts = []
        if fg is not None:
            parts.append(f"color:{fg}")
        if bg is not None:
            parts.append(f"background-color:{bg}")
        if self.bold:
            parts.append("font-weight:bold")
        if self.dim:
            parts.append("opacity:0.5")
        if self.italic:
            parts.append("font-style:italic")
        if self.underline:
            parts.append("text-decoration:underline")
        return ";".join(parts)


DEFAULT_STYLE = Style()


class AnsiState:
    """Carries SGR state across lines (colour set on line 10 still applies on line 11).

    Feed a log's lines in order, each without its newline; ``style`` is the
    style in force between lines (where a renderer would open a new line).
    """

    def __init__(self) -> None:
        self.style = DEFAULT_STYLE
        # (style before, SGR parameters) -> style after. A log repeats the
        # same few SGRs thousands of times; remembering them makes each
        # repeat one dictionary look-up instead of a parse.
        self._after_sgr: dict[tuple[Style, str], Style] = {}

    def reset(self) -> None:
        """Back to the default style (SGR 0, or a terminal reset ``ESC c``)."""
        self.style = DEFAULT_STYLE

    def spans(self, line: str) -> list[tuple[Style, str]]:
        """One log line, without its newline, as ``[(style, text)]``.

        Escape sequences other than SGR are dropped. A carriage return (a
        progress bar redrawing its line) discards what came before it once
        more text follows, so the line shows its final state: ``"10%\\r100%"``
        is ``"100%"`` and ``"done\\r"`` stays ``"done"``. Styles set in the
        discarded part still apply. Control characters other than TAB are
        dropped. Adjacent runs with the same style come back as one span, and
        no span is empty.
        """
        done: list[tuple[Style, str]] = []
        run: list[str] = []
        run_style = self.style
        after_return = False
        for match in _LINE_TOKEN.finditer(line):
            kind = match.lastgroup
            if kind == "text":
                if after_return:
                    done.clear()
                    run.clear()
                    after_return = False
                if self.style != run_style:
                    if run:
                        done.append((run_style, "".join(run)))
                        run.clear()
                    run_style = self.style
                run.append(match.group())
            elif kind == "control":
                if match.group() == "\r":
                    after_return = True
            elif match.group("final") == "m" and not match.group("junk"):
                self._select_graphic_rendition(match.group("params"))
            elif match.group() == "\x1bc":  # RIS, a full reset, resets attributes too
                self.style = DEFAULT_STYLE
        if run:
            done.append((run_style, "".join(run)))
        return done

    def _select_graphic_rendition(self, params: str) -> None:
        if len(params) > MAX_SGR_PARAM_CHARS:
            return  # garbage or hostile: dropped without effect, and not remembered
        key = (self.style, params)
        after = self._after_sgr.get(key)
        if after is None:
            after = _Rendition(self.style).apply(params)
            if len(self._after_sgr) >= MAX_REMEMBERED_SGRS:
                self._after_sgr.clear()
            self._after_sgr[key] = after
        self.style = after


class _Rendition:
    """A Style's fields, changeable while one SGR's parameters are applied."""

    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline", "inverse")

    def __init__(self, style: Style) -> None:
        self.fg = style.fg
        self.bg = style.bg
        self.bold = style.bold
        self.dim = style.dim
        self.italic = style.italic
        self.underline = style.underline
        self.inverse = style.inverse

    def apply(self, params: str) -> Style:
        """The style after one SGR (ECMA-48 8.3.117, xterm ctlseqs), given
        its parameter string of at most ``MAX_SGR_PARAM_CHARS``."""
        if params.strip(_SGR_CHARACTERS):
            # A private marker ("ESC [ > 4 ; 2 m" is xterm's modifyOtherKeys,
            # not an SGR): not ours to interpret.
            return self.style()
        fields = params.split(";")
        index = 0
        while index < len(fields):
            field = fields[index]
            index += 1
            if ":" in field:
                sub = field.split(":")
                code = _number(sub[0])
                if code in (38, 48, 58):
                    self._set_colour(code, _colour_from_subparameters(sub[1:]))
                elif code == 4:  # "4:0" no underline, "4:1".."4:5" underline styles
                    self.underline = len(sub) < 2 or _number(sub[1]) != 0
                else:
                    self._apply_code(code)
                continue
            code = _number(field)
            if code in (38, 48, 58):
                colour, used = _colour_from_fields(fields, index)
                index += used
                self._set_colour(code, colour)
            else:
                self._apply_code(code)
        return self.style()

    def style(self) -> Style:
        return Style(
            fg=self.fg,
            bg=self.bg,
            bold=self.bold,
            dim=self.dim,
            italic=self.italic,
            underline=self.underline,
            inverse=self.inverse,
        )

    def _set_colour(self, code: int, colour: str | None) -> None:
        # A malformed or out-of-range colour leaves the colour as it was.
        # 58 is the underline colour, which Style does not carry.
        if colour is None or code == 58:
            return
        if code == 38:
            self.fg = colour
        else:
            self.bg = colour

    def _apply_code(self, code: int) -> None:
        if code == 0:
            self.fg = self.bg = None
            self.bold = self.dim = self.italic = self.underline = self.inverse = False
        elif code == 1:
            self.bold = True
        elif code == 2:
            self.dim = True
        elif code == 3:
            self.italic = True
        elif code in (4, 21):  # 21 is double underline in ECMA-48 and xterm
            self.underline = True
        elif code == 7:
            self.inverse = True
        elif code == 22:
            self.bold = self.dim = False
        elif code == 23:
            self.italic = False
        elif code == 24:
            self.underline = False
        elif code == 27:
            self.inverse = False
        elif 30 <= code <= 37:
            self.fg = BASIC_COLOURS[code - 30]
        elif code == 39:
            self.fg = None
        elif 40 <= code <= 47:
            self.bg = BASIC_COLOURS[code - 40]
        elif code == 49:
            self.bg = None
        elif 90 <= code <= 97:
            self.fg = BASIC_COLOURS[code - 90 + 8]
        elif 100 <= code <= 107:
            self.bg = BASIC_COLOURS[code - 100 + 8]
        # Anything else (blink, conceal, strike, fonts, ...) has no Style field.


def _number(digits: str) -> int:
    """An SGR parameter's value; empty means 0 (ECMA-48 5.4.2)."""
    digits = digits.lstrip("0")
    if len(digits) > _MAX_NUMBER_DIGITS:
        return _OUT_OF_RANGE
    return int(digits) if digits else 0


def _palette(index: str) -> str | None:
    number = _number(index)
    return PALETTE_256[number] if number < len(PALETTE_256) else None


def _rgb(red: str, green: str, blue: str) -> str | None:
    channels = (_number(red), _number(green), _number(blue))
    if max(channels) > 255:
        return None
    return _hex(*channels)


def _colour_from_fields(fields: list[str], index: int) -> tuple[str | None, int]:
    """``38;5;n`` / ``38;2;r;g;b`` after the 38: the colour (None if malformed)
    and how many fields it used. An unknown or missing mode uses only itself,
    so the fields after it are read as ordinary codes."""
    if index >= len(fields):
        return None, 0
    mode = _number(fields[index])
    if mode == 5:
        if index + 1 >= len(fields):
            return None, 1
        return _palette(fields[index + 1]), 2
    if mode == 2:
        if index + 3 >= len(fields):
            return None, len(fields) - index
        return _rgb(*fields[index + 1 : index + 4]), 4
    return None, 1


def _colour_from_subparameters(sub: list[str]) -> str | None:
    """``38:5:n``, ``38:2::r:g:b`` (ITU T.416, with a colour-space id) and the
    common ``38:2:r:g:b`` without one."""
    if not sub:
        return None
    mode = _number(sub[0])
    if mode == 5 and len(sub) >= 2:
        return _palette(sub[1])
    if mode == 2:
        if len(sub) >= 5:
            return _rgb(*sub[2:5])
        if len(sub) == 4:
            return _rgb(*sub[1:4])
    return None


def strip_ansi(data: bytes) -> bytes:
    """``data`` without its escape sequences (CSI, OSC and every other kind).

    Every other byte is kept exactly, carriage returns, newlines, tabs and
    other control characters included, so line numbers and byte-exact text
    survive. Linear time.
    """
    if b"\x1b" not in data:
        return bytes(data)
    return _SEQUENCE_BYTES.sub(b"", data)
