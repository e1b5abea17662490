"""What to answer to a read, decided without I/O.

The shell gets a request (method, query, headers) and a stored paste's
metadata; this module says whether the read takes the paste (burn after
read), which representation it gets (the stored bytes, selected lines, the
HTML view, a live paste followed or a snapshot of what is committed), in
which content coding, and with which status and headers. ``net/http.py``
only fetches what the decision names and sends it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ncpaste.core import pages
from ncpaste.core.http import (
    ReadPlan,
    choose_encoding,
    html_headers,
    live_headers,
    plan_read,
    text_headers,
    wants_html,
)
from ncpaste.core.paste import PasteMeta
from ncpaste.core.slicing import LogQuery
from ncpaste.core.view import Notice, csp

# Selected lines are computed per request from immutable bytes: a private
# cache may keep them a minute (a shared cache must not: ?grep= of a secret).
SELECTED_MAX_AGE_S = 60


class Representation(enum.Enum):
    #: The stored bytes: whole, a range, or as zstd/gzip (``encoding``).
    RAW = "raw"
    #: ``?tail``, ``?lines``, ``?grep``, ``?ansi=strip`` of the bytes.
    SELECTED = "selected"
    #: The browser view of a finished paste.
    HTML = "html"
    #: The browser view of an open live paste, growing as it is written.
    HTML_FOLLOW = "html-follow"
    #: An open live paste followed with curl (chunked, until the writer ends).
    FOLLOW = "follow"
    #: HEAD or Range of an open live paste: from what is committed now.
    OPEN_SNAPSHOT = "open-snapshot"
    #: ``?meta``: the paste's metadata as JSON.
    META = "meta"
    #: The one-time page after a burn-after-read paste from the browser
    #: form: the notice alone (the paste's one read is left for its reader).
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """The parts of an HTTP request a read depends on."""

    method: str
    query: LogQuery
    accept: str | None = None
    accept_encoding: str | None = None
    range: str | None = None
    if_none_match: str | None = None
    #: The one-time notice this read shows (``?created=``, already taken
    #: from the store by the shell), or None.
    notice: Notice | None = None

    @classmethod
    def of(cls, method: str, query: LogQuery, headers: Mapping[bytes, bytes]) -> ReadRequest:
        get = headers.get
        accept, coding, ranges, tags = get(b"accept"), get(b"accept-encoding"), get(b"range"), get(b"if-none-match")
        return cls(
            method,
            query,
            None if accept is None else accept.decode("latin-1"),
            None if coding is None else coding.decode("latin-1"),
            None if ranges is None else ranges.decode("latin-1"),
            None if tags is None else tags.decode("latin-1"),
        )


@dataclass(frozen=True, slots=True)
class ReadDecision:
    representation: Representation
    #: RAW: the content coding to answer with (zstd, gzip) or None.
    encoding: str | None = None
    #: The response headers, for representations whose headers do not
    #: depend on the body (SELECTED, HTML, FOLLOW).
    headers: tuple[tuple[bytes, bytes], ...] = ()
    #: Send no body (HEAD).
    head_only: bool = False


def takes(request: ReadRequest, meta: PasteMeta) -> bool:
    """Does this read consume the paste? A burn-after-read paste is taken by
    the first full read (a GET; HEAD and ``?meta`` never burn), exactly once."""
    return meta.burn and request.method == "GET" and not request.query.meta and request.notice is None


def wants_notice(request: ReadRequest) -> bool:
    """Should the shell take the one-time notice ``?created=`` names? Only
    for the browser it was left for (the 303 after the form); any other
    reader of that address gets the paste as always."""
    return request.query.created is not None and request.method == "GET" and wants_html(request.accept)


def decide(request: ReadRequest, meta: PasteMeta, *, content_security_policy: str | None = None) -> ReadDecision:
    """The representation of ``meta``'s paste that ``request`` gets
    (``content_security_policy``: the view's, by default ``view.csp()``)."""
    head_only = request.method == "HEAD"
    query = request.query
    if query.meta:
        return ReadDecision(Representation.META, head_only=head_only)
    if request.notice is not None:
        if meta.burn or meta.is_open:
            return ReadDecision(Representation.NOTICE, headers=tuple(html_headers(pages.PAGE_CSP)))
        headers = tuple(html_headers(csp(delete_form=True)))
        return ReadDecision(Representation.HTML, headers=headers, head_only=head_only)
    if content_security_policy is None:
        content_security_policy = csp()
    if query.transforms:
        cache = b"no-store" if meta.is_open or meta.burn else b"private, max-age=%d" % SELECTED_MAX_AGE_S
        headers = (*text_headers(meta.state), (b"cache-control", cache))
        return ReadDecision(Representation.SELECTED, headers=headers, head_only=head_only)
    if not query.raw and wants_html(request.accept):
        headers = tuple(html_headers(content_security_policy))
        if meta.is_open:
            # It grows as the job writes: a buffering proxy must pass each piece on.
            headers = (*headers, (b"x-accel-buffering", b"no"))
            return ReadDecision(Representation.HTML_FOLLOW, headers=headers, head_only=head_only)
        return ReadDecision(Representation.HTML, headers=headers, head_only=head_only)
    if meta.is_open:
        if request.method == "GET" and request.range is None:
            return ReadDecision(Representation.FOLLOW, headers=tuple(live_headers()))
        return ReadDecision(Representation.OPEN_SNAPSHOT, head_only=head_only)
    encoding = choose_encoding(request.accept_encoding) if request.range is None else None
    return ReadDecision(Representation.RAW, encoding=encoding, head_only=head_only)


def plan_raw(
    request: ReadRequest, meta: PasteMeta, now_ms: int, decision: ReadDecision, encoded_size: int,
    *, shared_max_age_s: int,
) -> ReadPlan:
    """Status, headers and span of a RAW answer (``encoded_size``: the
    length of the zstd or gzip body when ``decision.encoding`` is set;
    ``shared_max_age_s``: how long a shared cache may serve it unasked)."""
    return plan_read(
        request.method,
        meta,
        now_ms,
        if_none_match=request.if_none_match,
        range_header=request.range,
        shared_max_age_s=shared_max_age_s,
        encoding=decision.encoding,
        encoded_size=encoded_size,
    )


def raw_plan_key(
    request: ReadRequest, meta: PasteMeta, now_ms: int, encoding: str | None, encoded_size: int,
    *, shared_max_age_s: int,
) -> tuple[object, ...] | None:
    """Everything ``plan_raw`` depends on for this read, as a key under which
    a plan (and the response built from it) can be reused; None when the
    request makes it one of a kind (Range, If-None-Match). Time enters only
    as the paste's remaining life in whole seconds (its max-age), so a hot
    paste's answer is built once a second at most."""
    if request.range is not None or request.if_none_match is not None:
        return None
    life_s = (meta.expires_ms - now_ms) // 1000
    return (request.method, encoding, encoded_size, life_s, shared_max_age_s, meta)


def plan_open_snapshot(request: ReadRequest, meta: PasteMeta, now_ms: int, committed: int) -> ReadPlan:
    """HEAD or Range of an open live paste, of the ``committed`` bytes so
    far: never cached (it grows), and no ETag (its checksum comes at the end)."""
    plan = plan_read(
        request.method, replace(meta, size=committed), now_ms, if_none_match=None, range_header=request.range,
        shared_max_age_s=0,
    )
    headers = [(name, value) for name, value in plan.headers if name not in (b"etag", b"cache-control")]
    headers.append((b"cache-control", b"no-store"))
    return ReadPlan(plan.status, headers, plan.span)
