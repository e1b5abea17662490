"""multipart/form-data bodies (``curl -F f=@file``, ``curl -F 'f=<-'``).

Streaming: each chunk from the socket goes through python-multipart's parser
straight into the PasteBuilder, so a form upload costs no more memory than a
raw one. Fields named like paste options (``-F expire=1h``) are options; the
one other field is the paste.

A browser's form (``text_box``) differs in two ways, both because of what
HTML forms send: a field left empty is sent empty, and means "not set"; and
the text box's line endings, which the browser turns into CRLF when it sends
the form (HTML, "converting newlines"), become LF again: what was typed is
what is stored. A file field, and every form from curl, is stored byte for
byte.
"""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

from ncpaste.core.errors import BadOption, BadRequest, PasteError, echo
from ncpaste.core.ingest import PasteBuilder
from ncpaste.core.options import OPTION_NAMES

# An option field's value is a few characters; anything longer is not one.
MAX_OPTION_FIELD_BYTES = 256
# Form overhead beyond the paste itself (boundaries, part headers, options).
MAX_FORM_OVERHEAD_BYTES = 64 * 1024


def boundary_of(content_type: bytes) -> bytes | None:
    """The boundary if this is multipart/form-data, else None."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary")
    return boundary


class FormPaste:
    """Feeds a multipart body into a PasteBuilder; collects option fields."""

    def __init__(self, boundary: bytes, builder: PasteBuilder, *, text_box: bool = False) -> None:
        self.builder = builder
        self._text_box = text_box
        #: Normalising a text box: its last chunk ended in CR (the LF may follow).
        self._held_cr = False
        self.option_pairs: list[tuple[str, str]] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._option: str | None = None
        self._option_value = bytearray()
        self._in_paste = False
        self._normalise = False
        self._paste_parts = 0
        #: The paste's field: its name, and whether it is a file (has a filename).
        self._paste_field = ("", False)
        self._complete = False
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                    "on_end": self._end,
                },
                max_size=builder.max_bytes + MAX_FORM_OVERHEAD_BYTES,
            )
        except ValueError:
            raise BadRequest("bad multipart boundary") from None

    def feed(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except PasteError:
            raise
        except ValueError:
            raise BadRequest("malformed multipart/form-data body") from None

    def finish(self) -> None:
        if not self._complete:
            raise BadRequest("malformed multipart/form-data body: it ended early")
        if not self._paste_parts:
            raise BadRequest("the form has no paste field: use curl -F f=@FILE")

    def _part_begin(self) -> None:
        self._headers = {}
        self._option = None
        self._option_value = bytearray()
        self._in_paste = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = b""
        self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("latin-1")
        if name in OPTION_NAMES and b"filename" not in params:
            self._option = name
            return
        is_file = b"filename" in params
        self._paste_parts += 1
        if self._paste_parts > 1:
            raise _second_paste_field(self._paste_field, (name, is_file))
        self._paste_field = (name, is_file)
        self._in_paste = True
        self._normalise = self._text_box and not is_file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_paste:
            if self._normalise:
                self._feed_text_box(data[start:end])
            else:
                self.builder.feed(data[start:end])
            return
        self._option_value += data[start:end]
        if len(self._option_value) > MAX_OPTION_FIELD_BYTES:
            raise BadOption(f"form field {self._option} is too long for an option")

    def _feed_text_box(self, chunk: bytes) -> None:
        """CRLF -> LF across chunk boundaries (a lone CR stays)."""
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._held_cr = True
        self.builder.feed(chunk.replace(b"\r\n", b"\n"))

    def _part_end(self) -> None:
        if self._in_paste and self._held_cr:
            self._held_cr = False
            self.builder.feed(b"\r")
        if self._option is not None:
            try:
                value = self._option_value.decode("ascii").strip()
            except UnicodeDecodeError:
                raise BadOption(f"form field {self._option} must be plain ASCII") from None
            if value or not self._text_box:
                self.option_pairs.append((self._option, value))

    def _end(self) -> None:
        self._complete = True


def _second_paste_field(first: tuple[str, bool], second: tuple[str, bool]) -> PasteError:
    """A form with two fields that are not options. A file field is the
    paste, so a plain field beside it is an option we do not know (said as
    the netcat port says it); two files are two pastes."""
    known = ", ".join(OPTION_NAMES)
    (first_name, first_is_file), (second_name, second_is_file) = first, second
    if first_is_file and second_is_file:
        return BadRequest("send one paste per request (the form has two file fields)")
    if first_is_file != second_is_file:
        unknown = second_name if first_is_file else first_name
        return BadOption(f"unknown option {echo(unknown)!r}: known options are {known}")
    return BadOption(
        f"form fields {echo(first_name)!r} and {echo(second_name)!r} both look like the paste: "
        f"send one paste field (e.g. -F f=@FILE) and options named {known}"
    )
