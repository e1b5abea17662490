"""Property tests for the parsers not covered elsewhere: aliases, query strings,
routes, Range headers and multipart bodies. No input may raise anything but
our typed errors (or ValueError where a function documents it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncpaste.core import keys
from ncpaste.core.errors import PasteError
from ncpaste.core.http import parse_range, route
from ncpaste.core.ingest import PasteBuilder
from ncpaste.core.options import parse_query
from ncpaste.net.multipart import FormPaste, boundary_of

from conftest import text_prefix

TEXT = st.text(max_size=200)


@given(TEXT)
def test_check_alias_raises_only_value_error(name: str) -> None:
    try:
        assert keys.check_alias(name) == name
    except ValueError:
        return
    assert name.isascii() and 3 <= len(name) <= 64


@given(st.text(alphabet=keys.KEY_ALPHABET + "._-", min_size=3, max_size=64))
def test_check_alias_accepts_the_documented_charset(name: str) -> None:
    if name[0].isalnum() and name.lower() not in keys.RESERVED_NAMES:
        assert keys.check_alias(name) == name


@given(TEXT)
def test_parse_query_raises_only_paste_errors(query: str) -> None:
    try:
        parse_query(query)
    except PasteError:
        pass


@given(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "X"]), TEXT)
def test_route_raises_only_paste_errors(method: str, target: str) -> None:
    try:
        where = route(method, "/" + target)
    except PasteError:
        return
    if where.key is not None and where.kind != "put":
        assert keys.is_plausible_name(where.key)


@given(TEXT, st.integers(min_value=0, max_value=10**7))
def test_parse_range_stays_inside_the_body(header: str, size: int) -> None:
    try:
        span = parse_range(header, size)
    except PasteError:
        return
    if span is not None:
        start, end = span
        assert 0 <= start < end <= size


def _form(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@settings(max_examples=200)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_multipart_garbage_raises_only_paste_errors(body: bytes, chunk: int) -> None:
    form = FormPaste(b"XyZzY", PasteBuilder(1000))
    try:
        for start in range(0, len(body), chunk):
            form.feed(body[start : start + chunk])
        form.finish()
        form.builder.finish()
    except PasteError:
        pass


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=500), st.integers(min_value=1, max_value=97))
def test_multipart_paste_round_trips_in_any_chunking(text: str, chunk: int) -> None:
    data = text.encode()
    body = _form("b0und4ry", [("expire", None, b"1h"), ("f", "log.txt", data)])
    form = FormPaste(b"b0und4ry", PasteBuilder(10_000))
    try:
        for start in range(0, len(body), chunk):
            form.feed(body[start : start + chunk])
        form.finish()
        _, got = form.builder.finish()
    except PasteError as error:
        assert "\0" in text, error.message  # NUL is the only way valid text is refused
        return
    assert bytes(got) == data
    assert form.option_pairs == [("expire", "1h")]


@given(st.binary(max_size=300))
def test_boundary_of_raises_only_paste_errors(content_type: bytes) -> None:
    try:
        boundary_of(content_type)
    except PasteError:
        pass


def test_two_file_fields_are_refused() -> None:
    body = _form("bb", [("a", "1.txt", b"one"), ("b", "2.txt", b"two")])
    form = FormPaste(b"bb", PasteBuilder(1000))
    with pytest.raises(PasteError, match="one paste per request"):
        form.feed(body)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # A plain field beside the file is an option we do not know.
        ([("colour", None, b"1"), ("f", "small.log", b"log")],
         "unknown option 'colour': known options are expire, alias, burn, token, redact"),
        ([("f", "small.log", b"log"), ("colour", None, b"1")],
         "unknown option 'colour': known options are expire, alias, burn, token, redact"),
        # Two plain fields: either could be the paste.
        ([("colour", None, b"1"), ("f", None, b"log")],
         "form fields 'colour' and 'f' both look like the paste: send one paste field "
         "(e.g. -F f=@FILE) and options named expire, alias, burn, token, redact"),
    ],
)
def test_an_unknown_form_field_is_named_as_an_unknown_option(fields, message) -> None:  # type: ignore[no-untyped-def]
    form = FormPaste(b"bb", PasteBuilder(1000))
    with pytest.raises(PasteError) as caught:
        form.feed(_form("bb", fields))
    assert caught.value.message == message and caught.value.http_status == 400


@settings(max_examples=300)
@given(
    st.lists(st.binary(max_size=12) | st.text(max_size=6).map(str.encode), max_size=8),
)
def test_the_builder_keeps_exactly_the_text_before_the_first_bad_byte(chunks: list[bytes]) -> None:
    """However the stream is cut into chunks, what the builder holds (and a
    live paste drains and commits) is whole characters of text, up to the
    first NUL byte or invalid UTF-8 and nothing after it."""
    from ncpaste.core.errors import NotText

    data = b"".join(chunks)
    builder = PasteBuilder(1 << 20)
    drained = b""
    try:
        for chunk in chunks:
            try:
                builder.feed(chunk)
            finally:
                drained += builder.drain()
        builder.check_end()
    except NotText as error:
        prefix = text_prefix(data)
        assert drained == prefix
        assert f"at byte {len(prefix)} " in error.message
        return
    assert drained == data and text_prefix(data) == data
