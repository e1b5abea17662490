"""Log-friendly reads of a paste: ``?tail=``, ``?lines=``, ``?ansi=strip``, ``?grep=``.

People paste CI logs and then want one part of them from a script or a
terminal: the last 50 lines, lines 1400-1450, the log without colour codes, or
the lines mentioning ``error`` with their line numbers. ``parse_log_query``
turns the read URL's query string into a ``LogQuery``; ``apply`` computes the
answer from the paste's bytes.

The steps, in this order, whatever the order in the URL (what people mean
by ``?grep=ERROR&tail=2`` is "the last two errors", as in
``grep -n ERROR log | tail -2``):

1. ``lines=A-B`` keeps lines A to B (1-based, inclusive).
2. ``grep=TEXT`` keeps the lines containing TEXT (``&i``: ignoring case),
   compared with the escape-free text (so a colour code inside a word does
   not hide it), and writes each as ``grep -n`` does: ``1423:text\\n``,
   numbered by its line in the whole paste.
3. ``tail=N`` keeps the last N lines of what is left.
4. ``ansi=strip`` removes escape sequences from the answer; without it,
   lines are written with their escape sequences, as stored.

Lines are split on ``\\n`` only; a final line without a newline is a line, and
a body ending in ``\\n`` has no empty line after it. Apart from grep's
prefixes and newlines the answer is the paste's own bytes, never decoded and
re-encoded. Each step is linear in the body size.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import unquote_plus

from ncpaste.core import keys
from ncpaste.core.ansi import strip_ansi
from ncpaste.core.errors import BadOption, echo

# Any tail or line number above this is a mistake or a probe: a 10 MiB paste
# (the default size limit) of 10-byte lines has about a million lines, and the
# limit bounds the per-line work (split pieces) one read can ask for.
MAX_LINE_NUMBER = 1_000_000
# A grep pattern is a word or a short phrase from a log line; longer than this
# it is not a search someone typed.
MAX_GREP_CHARS = 256
# Room for every option at once with a grep of MAX_GREP_CHARS characters
# percent-encoded as four-byte UTF-8 (12 characters each, 3072 in all).
MAX_LOG_QUERY_CHARS = 4096
LOG_QUERY_NAMES = ("raw", "tail", "lines", "ansi", "grep", "i", "meta")
# Where the browser form's 303 lands (``?created=NOTICE``): taken, never
# offered to people, so error messages do not list it.
_LANDING_NAMES = ("created",)
#: The end of ``LogQuery.lines`` for ``lines=A-`` (to the last line).
TO_END = sys.maxsize

_TRUE = {"", "1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
#: Options without a value (``?raw``, ``&i``), and how to write them.
_SWITCHES = {"raw": "?raw or raw=1", "i": "&i or i=1", "meta": "?meta or meta=1"}
_EXAMPLES = {"tail": "tail=50", "lines": "lines=10-20", "ansi": "ansi=strip", "grep": "grep=error", "created": "created=KEY"}


@dataclass(frozen=True)
class LogQuery:
    """What a reader asked of a paste's text."""

    #: ``?raw`` or ``raw=1``: the plain bytes, never the HTML page.
    raw: bool = False
    #: ``tail=N``: the last N lines.
    tail: int | None = None
    #: ``lines=A-B``: lines A to B, 1-based and inclusive; B is ``TO_END``
    #: for ``lines=A-``, and equals A for ``lines=A``.
    lines: tuple[int, int] | None = None
    #: ``ansi=strip``: without escape sequences.
    ansi_strip: bool = False
    #: ``grep=TEXT``: lines containing TEXT (plain text, not a pattern), numbered.
    grep: str | None = None
    #: ``i``: grep ignores case (``grep -i``).
    ignore_case: bool = False
    #: ``?meta``: the paste's metadata as JSON, not its text (never burns it).
    meta: bool = False
    #: ``?created=HANDLE``: where the browser form's 303 lands; names the
    #: one-time notice (link and delete token) to show once.
    created: str | None = None

    def __post_init__(self) -> None:
        # Client mistakes are BadOption in parse_log_query; these are ours.
        if self.tail is not None and self.tail < 0:
            raise ValueError("tail must not be negative")
        if self.lines is not None and not 1 <= self.lines[0] <= self.lines[1]:
            raise ValueError("lines must be (first, last) with 1 <= first <= last")
        if self.grep is not None and (not self.grep or "\n" in self.grep):
            raise ValueError("grep must be non-empty text within one line")

    @property
    def transforms(self) -> bool:
        """Whether the answer differs from the stored bytes (so it is text
        computed per request, not the paste as stored)."""
        return (
            self.tail is not None
            or self.lines is not None
            or self.ansi_strip
            or self.grep is not None
        )


def _unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise BadOption("query string is not valid UTF-8 once percent-decoded") from None


def _whole_number(name: str, text: str, value: str, smallest: int) -> int:
    digits = text.lstrip("0") or "0"
    if not (text.isascii() and text.isdigit()) or len(digits) > len(str(MAX_LINE_NUMBER)):
        number = None
    else:
        number = int(digits)
    if number is None or not smallest <= number <= MAX_LINE_NUMBER:
        raise BadOption(
            f"bad option {name}={echo(value)}: use whole numbers "
            f"from {smallest} to {MAX_LINE_NUMBER}"
        )
    return number


def _parse_lines(value: str) -> tuple[int, int]:
    first_text, dash, last_text = value.partition("-")
    if not first_text:
        raise BadOption(f"bad option lines={echo(value)}: use lines=A-B, lines=A- or lines=A")
    first = _whole_number("lines", first_text, value, 1)
    if not dash:
        return first, first
    if not last_text:
        return first, TO_END
    last = _whole_number("lines", last_text, value, 1)
    if first > last:
        raise BadOption(f"bad option lines={echo(value)}: the first line is after the last")
    return first, last


# A read without a query string (LogQuery is immutable: one serves all).
_PLAIN = LogQuery()


def parse_log_query(query: str) -> LogQuery:
    """A read URL's query string (without the ``?``), e.g. ``tail=50&ansi=strip``.

    Raises ``BadOption`` naming the option for an unknown name, a value it
    does not take, a number out of range or an option given twice.
    """
    if not query:
        return _PLAIN  # most reads: the paste as it is
    if len(query) > MAX_LOG_QUERY_CHARS:
        raise BadOption("query string too long")
    values: dict[str, object] = {}
    for field in query.split("&"):
        if not field:  # "tail=5&" from a script that joins with "&"
            continue
        encoded_name, _, encoded_value = field.partition("=")
        name = _unquote(encoded_name)
        value = _unquote(encoded_value)
        if name not in LOG_QUERY_NAMES and name not in _LANDING_NAMES:
            raise BadOption(
                f"unknown option '{echo(name)}': known options are {', '.join(LOG_QUERY_NAMES)}"
            )
        if name in values:
            raise BadOption(f"option {name} given twice")
        if name in _SWITCHES:
            lowered = value.lower()
            if lowered not in _TRUE and lowered not in _FALSE:
                raise BadOption(f"bad option {name}={echo(value)}: use {_SWITCHES[name]}")
            values[name] = lowered in _TRUE
            continue
        if not value:
            raise BadOption(f"option {name} needs a value, e.g. {_EXAMPLES[name]}")
        if name == "tail":
            values[name] = _whole_number("tail", value, value, 0)
        elif name == "lines":
            values[name] = _parse_lines(value)
        elif name == "created":
            if not keys.is_plausible_name(value):
                raise BadOption("bad option created: it names a notice of this site's form")
            values[name] = value
        elif name == "ansi":
            if value != "strip":
                raise BadOption(f"bad option ansi={echo(value)}: use ansi=strip")
            values[name] = True
        else:
            if len(value) > MAX_GREP_CHARS:
                raise BadOption(f"grep pattern longer than {MAX_GREP_CHARS} characters")
            if "\n" in value:
                raise BadOption("grep pattern cannot contain a newline: it matches within one line")
            values[name] = value
    if values.get("i") and "grep" not in values:
        raise BadOption("option i (ignore case) goes with grep, e.g. grep=error&i")
    if values.get("meta") and len(values) > 1:
        raise BadOption("option meta goes alone: it answers the paste's metadata, not its text")
    if "created" in values and len(values) > 1:
        raise BadOption("option created goes alone: it is where the paste form lands")
    return LogQuery(
        raw=bool(values.get("raw", False)),
        ignore_case=bool(values.get("i", False)),
        tail=values.get("tail"),  # type: ignore[arg-type]
        lines=values.get("lines"),  # type: ignore[arg-type]
        ansi_strip=bool(values.get("ansi", False)),
        grep=values.get("grep"),  # type: ignore[arg-type]
        meta=bool(values.get("meta", False)),
        created=values.get("created"),  # type: ignore[arg-type]
    )


def count_lines(data: bytes) -> int:
    """Lines in ``data``: a final line without a newline counts, an empty
    string after a final newline does not."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _from_line(data: bytes, first: int) -> bytes:
    """``data`` from the start of line ``first`` (1-based) on; empty when it
    has fewer lines."""
    pieces = data.split(b"\n", first - 1)
    if len(pieces) < first:
        return b""
    return data[len(data) - len(pieces[-1]) :]


def _head(data: bytes, count: int) -> bytes:
    """The first ``count`` lines of ``data``, each with its newline."""
    pieces = data.split(b"\n", count)
    if len(pieces) <= count:
        return data
    return data[: len(data) - len(pieces[-1])]


def _tail(data: bytes, count: int) -> bytes:
    """The last ``count`` lines of ``data``, each with its newline."""
    if count == 0:
        return b""
    if count >= count_lines(data):  # also keeps maxsplit below in range
        return data
    # A final newline ends the last line; rsplit would see an empty piece after it.
    separators = count + (1 if data.endswith(b"\n") else 0)
    pieces = data.rsplit(b"\n", separators)
    if len(pieces) <= separators:
        return data
    return data[len(pieces[0]) + 1 :]


def _grep(haystack: bytes, needle: bytes, shown: bytes, first_number: int) -> bytes:
    """``grep -n``: the lines of ``shown`` whose line in ``haystack`` (the
    same lines, searched form: escape-free, case-folded) contains
    ``needle``, numbered from ``first_number``. ``needle`` is not empty, so
    a line left empty by stripping never matches."""
    found: list[int] = []  # line indexes
    position = 0
    counted_to = 0
    line_index = 0
    while True:
        hit = haystack.find(needle, position)
        if hit < 0:
            break
        line_start = haystack.rfind(b"\n", 0, hit) + 1
        line_end = haystack.find(b"\n", hit)
        line_index += haystack.count(b"\n", counted_to, line_start)
        counted_to = line_start
        found.append(line_index)
        if line_end < 0:
            break
        position = line_end + 1
    if not found:
        return b""
    pieces = shown.split(b"\n", found[-1] + 1)
    return b"".join(b"%d:%s\n" % (first_number + index, pieces[index]) for index in found)


def _folded(text: bytes, pattern: str) -> tuple[bytes, bytes]:
    """``text`` and ``pattern`` case-folded for ``grep -i``. ASCII-only
    patterns fold bytewise (fast, and lengths stay the same); others fold
    the decoded text (a paste is valid UTF-8), which keeps every newline."""
    if pattern.isascii():
        return text.lower(), pattern.lower().encode()
    return text.decode("utf-8", "replace").casefold().encode(), pattern.casefold().encode()


def apply(body: bytes, query: LogQuery) -> bytes:
    """The answer to ``query`` from a paste's ``body`` (see the module
    docstring for the order of the steps). ``body`` itself when the query
    asks for no transform."""
    if not query.transforms:
        return body
    selected = body
    first_number = 1
    if query.lines is not None:
        first, last = query.lines
        selected = _from_line(selected, first)
        if last != TO_END:
            selected = _head(selected, last - first + 1)
        first_number = first
    if query.grep is not None:
        stripped = strip_ansi(selected)
        haystack, needle = stripped, query.grep.encode("utf-8")
        if query.ignore_case:
            haystack, needle = _folded(stripped, query.grep)
        shown = stripped if query.ansi_strip or b"\x1b" not in selected else selected
        selected = _grep(haystack, needle, shown, first_number)
    if query.tail is not None:
        selected = _tail(selected, query.tail)
    if query.ansi_strip and query.grep is None:
        selected = strip_ansi(selected)
    return selected
