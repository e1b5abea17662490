"""Log-friendly reads of a paste: ``?tail=``, ``?lines=``, ``?ansi=strip``, ``?grep=``.

People paste CI logs and then want one part of them from a script or a
terminal: the last 50 lines, lines 1400-1450, the log without colour codes, or
the lines mentioning ``error`` with their line numbers. ``parse_log_query``
turns the read URL's query string into a ``LogQuery``; ``apply`` computes the
answer from the paste's bytes.

The steps, in this order:

1. ``lines=A-B`` keeps lines A to B (1-based, inclusive), then ``tail=N``
   keeps the last N of those.
2. ``ansi=strip`` removes escape sequences from what was kept.
3. ``grep=TEXT`` keeps the lines containing TEXT, compared with the
   escape-free text (so a colour code inside a word does not hide it), and
   writes each as ``grep -n`` does: ``1423:text\\n``, numbered by its line in
   the whole paste. Without ``ansi=strip`` the line is written with its escape
   sequences, as stored.

Lines are split on ``\\n`` only; a final line without a newline is a line, and
a body ending in ``\\n`` has no empty line after it. Apart from grep's
prefixes and newlines the answer is the paste's own bytes, never decoded and
re-encoded. Each step is linear in the body size.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import unquote_plus

from ncpaste.core.ansi import strip_ansi
from ncpaste.core.errors import BadOption

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
LOG_QUERY_NAMES = ("raw", "tail", "lines", "ansi", "grep")
#: The end of ``LogQuery.lines`` for ``lines=A-`` (to the last line).
TO_END = sys.maxsize

_TRUE = {"", "1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_EXAMPLES = {"tail": "tail=50", "lines": "lines=10-20", "ansi": "ansi=strip", "grep": "grep=error"}


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
    #: ``grep=TEXT``: lines containing TEXT (plain, case-sensitive), numbered.
    grep: str | None = None

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


def _show(value: str) -> str:
    """Echo a client's value back safely: bounded, printable, one line."""
    clipped = value[:40] + ("..." if len(value) > 40 else "")
    return clipped.encode("unicode_escape").decode("ascii")


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
            f"bad option {name}={_show(value)}: use whole numbers "
            f"from {smallest} to {MAX_LINE_NUMBER}"
        )
    return number


def _parse_lines(value: str) -> tuple[int, int]:
    first_text, dash, last_text = value.partition("-")
    if not first_text:
        raise BadOption(f"bad option lines={_show(value)}: use lines=A-B, lines=A- or lines=A")
    first = _whole_number("lines", first_text, value, 1)
    if not dash:
        return first, first
    if not last_text:
        return first, TO_END
    last = _whole_number("lines", last_text, value, 1)
    if first > last:
        raise BadOption(f"bad option lines={_show(value)}: the first line is after the last")
    return first, last


def parse_log_query(query: str) -> LogQuery:
    """A read URL's query string (without the ``?``), e.g. ``tail=50&ansi=strip``.

    Raises ``BadOption`` naming the option for an unknown name, a value it
    does not take, a number out of range or an option given twice.
    """
    if len(query) > MAX_LOG_QUERY_CHARS:
        raise BadOption("query string too long")
    raw = False
    values: dict[str, object] = {}
    for field in query.split("&"):
        if not field:  # "tail=5&" from a script that joins with "&"
            continue
        encoded_name, _, encoded_value = field.partition("=")
        name = _unquote(encoded_name)
        value = _unquote(encoded_value)
        if name not in LOG_QUERY_NAMES:
            raise BadOption(
                f"unknown option '{_show(name)}': known options are {', '.join(LOG_QUERY_NAMES)}"
            )
        if name in values:
            raise BadOption(f"option {name} given twice")
        if name == "raw":
            lowered = value.lower()
            if lowered not in _TRUE and lowered not in _FALSE:
                raise BadOption(f"bad option raw={_show(value)}: use ?raw or raw=1")
            raw = lowered in _TRUE
            values[name] = raw
            continue
        if not value:
            raise BadOption(f"option {name} needs a value, e.g. {_EXAMPLES[name]}")
        if name == "tail":
            values[name] = _whole_number("tail", value, value, 0)
        elif name == "lines":
            values[name] = _parse_lines(value)
        elif name == "ansi":
            if value != "strip":
                raise BadOption(f"bad option ansi={_show(value)}: use ansi=strip")
            values[name] = True
        else:
            if len(value) > MAX_GREP_CHARS:
                raise BadOption(f"grep pattern longer than {MAX_GREP_CHARS} characters")
            if "\n" in value:
                raise BadOption("grep pattern cannot contain a newline: it matches within one line")
            values[name] = value
    return LogQuery(
        raw=raw,
        tail=values.get("tail"),  # type: ignore[arg-type]
        lines=values.get("lines"),  # type: ignore[arg-type]
        ansi_strip=bool(values.get("ansi", False)),
        grep=values.get("grep"),  # type: ignore[arg-type]
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


def _grep(
    original: bytes, searched: bytes, pattern: bytes, first_number: int, show_searched: bool
) -> bytes:
    """``grep -n``: the lines of ``searched`` containing ``pattern``, numbered
    from ``first_number``; written from ``searched`` or, when not
    ``show_searched``, from the same line of ``original`` (the two have the
    same lines: stripping escapes never removes a newline). ``pattern`` is
    not empty, so a line left empty by stripping never matches."""
    end = len(searched)
    found: list[tuple[int, int, int]] = []  # (line index, start, end) in searched
    position = 0
    counted_to = 0
    line_index = 0
    while True:
        hit = searched.find(pattern, position)
        if hit < 0:
            break
        line_start = searched.rfind(b"\n", 0, hit) + 1
        line_end = searched.find(b"\n", hit)
        if line_end < 0:
            line_end = end
        line_index += searched.count(b"\n", counted_to, line_start)
        counted_to = line_start
        found.append((line_index, line_start, line_end))
        position = line_end + 1
    if not found:
        return b""
    if show_searched:
        lines = [searched[start:stop] for _, start, stop in found]
    else:
        pieces = original.split(b"\n", found[-1][0] + 1)
        lines = [pieces[index] for index, _, _ in found]
    return b"".join(
        b"%d:%s\n" % (first_number + index, line) for (index, _, _), line in zip(found, lines)
    )


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
    if query.tail is not None:
        before = count_lines(selected)
        selected = _tail(selected, query.tail)
        first_number += before - count_lines(selected)
    if query.grep is None:
        return strip_ansi(selected) if query.ansi_strip else selected
    stripped = strip_ansi(selected)
    show_stripped = query.ansi_strip or b"\x1b" not in selected
    return _grep(selected, stripped, query.grep.encode("utf-8"), first_number, show_stripped)
