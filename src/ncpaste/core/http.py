"""HTTP decisions without I/O: routing, conditional and range reads, headers.

The shell parses bytes with h11, asks this module what to answer, and writes
the answer. Nothing here touches a socket or the store.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import unquote

from ncpaste.core import keys, pages, units
from ncpaste.core.errors import (
    AmbiguousFraming,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PasteError,
    RangeNotSatisfiable,
    RateLimited,
    VersionNotSupported,
)
from ncpaste.core.paste import PasteMeta

TEXT_PLAIN = b"text/plain; charset=utf-8"
APPLICATION_JSON = b"application/json"
# Headers on every response: the bytes are text, never sniffed as HTML, never
# allowed to load or run anything, never indexed, never leaking the URL onwards.
SAFETY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; sandbox"),
    (b"x-robots-tag", b"noindex, nofollow"),
    (b"referrer-policy", b"no-referrer"),
]
# A Range header longer than this is not a single byte range we would honour.
MAX_RANGE_HEADER = 100
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")

ROBOTS_TXT = b"User-agent: *\nDisallow: /\n"


class RouteKind(enum.StrEnum):
    """What a request asks for. A StrEnum: its value is what the request log says."""

    USAGE = "usage"
    #: ``OPTIONS *``: what the server as a whole allows (RFC 9110 9.3.7).
    OPTIONS = "options"
    HEALTHZ = "healthz"
    ROBOTS = "robots"
    METRICS = "metrics"
    READ = "read"
    CREATE = "create"
    PUT = "put"
    DELETE = "delete"
    #: POST /KEY from the delete button of the one-time page (a browser
    #: cannot send DELETE from a plain form).
    DELETE_FORM = "delete-form"

    @property
    def creates(self) -> bool:
        return self in (RouteKind.CREATE, RouteKind.PUT)


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    key: str | None = None
    query: str = ""


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class ReadPlan:
    """How to answer a read: status, headers, and which bytes (if any)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    #: Slice of the body to send, or None for no body (HEAD, 304).
    span: tuple[int, int] | None


_STATIC_ROUTES = {
    "": RouteKind.USAGE,
    "healthz": RouteKind.HEALTHZ,
    "robots.txt": RouteKind.ROBOTS,
    "metrics": RouteKind.METRICS,
}
_READ_METHODS = "GET, HEAD"
#: Every method some route takes: the answer to ``OPTIONS *``.
ALL_METHODS = "GET, HEAD, POST, PUT, DELETE"


def check_request(http_version: bytes, headers: dict[bytes, bytes]) -> None:
    """Framing h11 lets through that we refuse. Any version but HTTP/1.x is
    ``505`` (RFC 9110 15.6.6; ``HTTP/2.0`` on this port is a client that
    skipped the upgrade). Transfer-Encoding with Content-Length is the shape
    of request smuggling: RFC 9112 6.1 lets a server reject it, and we do
    (``400``, then the connection closes)."""
    if not http_version.startswith(b"1."):
        raise VersionNotSupported(
            f"HTTP/{http_version.decode('ascii', 'replace')} is not supported: this server speaks HTTP/1.1 and 1.0"
        )
    if b"transfer-encoding" in headers and b"content-length" in headers:
        raise AmbiguousFraming("Transfer-Encoding with Content-Length: send one of them (RFC 9112 6.1)")


def route(method: str, target: str) -> Route:
    """Map a request line to what it asks for. Raises NotFound / MethodNotAllowed / BadRequest."""
    if method == "CONNECT":  # authority-form (RFC 9112 3.2.3): we are not a proxy
        raise MethodNotAllowed("method CONNECT not allowed: this is not a proxy", ALL_METHODS)
    if target == "*":  # asterisk-form, for OPTIONS only (RFC 9112 3.2.4)
        if method != "OPTIONS":
            raise BadRequest("bad request target: * goes with OPTIONS only")
        return Route(RouteKind.OPTIONS)
    if target.startswith(("http://", "https://")):
        # absolute-form: a server MUST accept it (RFC 9112 3.2.2); the
        # authority is the Host's business, the path is the route.
        rest = target.split("://", 1)[1]
        start = next((i for i, char in enumerate(rest) if char in "/?"), len(rest))
        target = rest[start:] if rest[start:].startswith("/") else "/" + rest[start:]
    path, _, query = target.partition("?")
    if not path.startswith("/"):
        raise BadRequest("bad request target")
    try:
        name = unquote(path[1:], errors="strict") if "%" in path else path[1:]
    except UnicodeDecodeError:
        raise NotFound("no such paste") from None
    static = _STATIC_ROUTES.get(name)
    if static is not None:
        if static is RouteKind.USAGE and method == "POST":
            return Route(RouteKind.CREATE, query=query)
        allowed = "GET, HEAD, POST" if static is RouteKind.USAGE else _READ_METHODS
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"method {method} not allowed here", allowed)
        return Route(static, query=query)
    if method == "PUT":
        return Route(RouteKind.PUT, name, query)  # the handler explains a bad alias
    if not keys.is_plausible_name(name):
        raise NotFound("no such paste")
    if method in ("GET", "HEAD"):
        return Route(RouteKind.READ, name, query)
    if method == "DELETE":
        return Route(RouteKind.DELETE, name, query)
    if method == "POST":
        return Route(RouteKind.DELETE_FORM, name, query)
    raise MethodNotAllowed(f"method {method} not allowed here", "GET, HEAD, POST, PUT, DELETE")


def http_date(ms: int) -> bytes:
    """RFC 9110 date; whole seconds, so the cache hits across requests."""
    return _cached_http_date(ms - ms % 1000)


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One byte range (RFC 9110 14.1.2) -> (start, end_exclusive).

    Returns None when the header should be ignored (multiple ranges or a form
    we do not serve; the full body is then sent with 200, as the RFC allows).
    Raises RangeNotSatisfiable for a range that selects nothing.
    """
    if len(value) > MAX_RANGE_HEADER:
        return None
    match = _RANGE_RE.fullmatch(value.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes (the tail of a log)
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable("range not satisfiable", size)
        return max(size - length, 0), size
    start = int(first)
    end = int(last) + 1 if last else size
    if last and end <= start:
        return None  # last < first: syntactically invalid, ignore (RFC 9110)
    if start >= size:
        raise RangeNotSatisfiable("range not satisfiable", size)
    return start, min(end, size)


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


# An Accept header longer than this is not a browser's; treat as plain text.
MAX_ACCEPT = 1024


def _accept_q(accept: str, media: str) -> float:
    """The q-value ``accept`` gives ``media`` (exact type, then type/*, then */*)."""
    kind = media.split("/")[0] + "/*"
    best = {"exact": -1.0, "kind": -1.0, "any": -1.0}
    for item in accept.lower().split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        slot = "exact" if name == media else "kind" if name == kind else "any" if name == "*/*" else None
        if slot is not None:
            best[slot] = max(best[slot], q)
    for slot in ("exact", "kind", "any"):
        if best[slot] >= 0:
            return best[slot]
    return 0.0


def wants_html(accept: str | None) -> bool:
    """Does the client prefer text/html to text/plain (a browser)? curl's
    ``*/*`` does not: it keeps getting the exact bytes."""
    if not accept or len(accept) > MAX_ACCEPT or "text/html" not in accept.lower():
        return False
    return _accept_q(accept, "text/html") > _accept_q(accept, "text/plain")


def wants_json(accept: str | None) -> bool:
    """Does the client ask for JSON (``Accept: application/json``) rather
    than text? curl's ``*/*`` and a browser's Accept do not."""
    if not accept or len(accept) > MAX_ACCEPT or "application/json" not in accept.lower():
        return False
    return _accept_q(accept, "application/json") > _accept_q(accept, "text/plain")


class Dialect(enum.Enum):
    """What form a request's answers take, from its Accept header: plain
    text (curl, nc users, the default), JSON (scripts) or HTML (a browser)."""

    TEXT = "text"
    JSON = "json"
    HTML = "html"


def dialect_of(accept: str | None) -> Dialect:
    if accept is None:
        return Dialect.TEXT
    if wants_json(accept):
        return Dialect.JSON
    return Dialect.HTML if wants_html(accept) else Dialect.TEXT


# An Origin or Host header longer than this names no site of ours.
MAX_ORIGIN = 512


def is_cross_site(
    origin: str | None, fetch_site: str | None, host: str | None, base_url: str
) -> bool:
    """Is this a post another site's page made the visitor's browser send?

    Browsers name the page a POST comes from in ``Origin`` (RFC 6454; sent on
    every cross-origin and same-origin POST) and, lately, in
    ``Sec-Fetch-Site``. A post from our own form names our origin: the
    configured base URL's, or the one the request's Host header gives (the
    same site reached by another name). curl and scripts send neither header:
    they are not a browser acting for someone else, and pass."""
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return True
    if origin is None:
        return False
    origin = origin.strip().lower()
    if len(origin) > MAX_ORIGIN or origin == "null":
        return True
    scheme, _, rest = base_url.lower().partition("://")
    ours = {f"{scheme}://{rest.split('/', 1)[0]}"}
    if host and len(host) <= MAX_ORIGIN:
        ours |= {f"http://{host.lower()}", f"https://{host.lower()}"}
    return origin not in ours


ENCODINGS = ("zstd", "gzip")
# An Accept-Encoding header longer than this is not worth parsing.
MAX_ACCEPT_ENCODING = 256


def choose_encoding(accept_encoding: str | None) -> str | None:
    """The content coding to answer with: zstd (the stored frame, sent as is)
    if the client takes it, else gzip, else None (identity). RFC 9110 12.5.3."""
    if not accept_encoding or len(accept_encoding) > MAX_ACCEPT_ENCODING:
        return None
    accepted = set()
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        q = params.strip()
        if q.startswith("q="):
            try:
                if float(q[2:]) <= 0:
                    continue
            except ValueError:
                continue
        accepted.add(name.strip())
    for coding in ENCODINGS:
        if coding in accepted:
            return coding
    return None


@functools.lru_cache(maxsize=4096)
def _cached_http_date(ms: int) -> bytes:
    return formatdate(ms / 1000, usegmt=True).encode()


def plan_read(
    method: str,
    meta: PasteMeta,
    now_ms: int,
    *,
    if_none_match: str | None,
    range_header: str | None,
    shared_max_age_s: int,
    encoding: str | None = None,
    encoded_size: int = 0,
) -> ReadPlan:
    """Decide the answer to GET/HEAD of a stored paste. With ``encoding``
    (zstd or gzip, of ``encoded_size`` bytes) the body is that coding of the
    paste; a Range request is always answered from the plain bytes.

    A paste never changes, but it can be deleted: a browser may keep it for
    its whole life (only whoever read it sees that copy), while shared caches
    (a front cache, a CDN, a company proxy) keep it ``shared_max_age_s`` at
    most before they must ask again (``s-maxage`` implies they revalidate),
    so a deleted paste stops being served within that bound."""
    if range_header is not None:
        encoding = None
    etag = meta.etag() if encoding is None else '"%s-%s"' % (meta.checksum.hex(), encoding)
    if meta.burn:
        cache = b"no-store"
    else:
        life_s = max((meta.expires_ms - now_ms) // 1000, 0)
        cache = b"public, max-age=%d, s-maxage=%d" % (life_s, min(shared_max_age_s, life_s))
    headers = [
        (b"content-type", TEXT_PLAIN),
        (b"etag", etag.encode()),
        (b"last-modified", http_date(meta.created_ms)),
        (b"cache-control", cache),
        (b"accept-ranges", b"bytes"),
        (b"x-expires", http_date(meta.expires_ms)),
        (b"x-paste-state", meta.state.encode()),
        (b"vary", b"accept, accept-encoding"),
        *SAFETY_HEADERS,
    ]
    if meta.truncated:
        headers.append((b"x-paste-truncated", meta.truncated.encode()))
    if encoding is not None:
        headers.append((b"content-encoding", encoding.encode()))
    if if_none_match is not None and not meta.burn and _etag_matches(if_none_match, etag):
        return ReadPlan(304, headers, None)
    size = meta.size if encoding is None else encoded_size
    span = (0, size)
    status = 200
    if range_header is not None and not meta.burn:
        chosen = parse_range(range_header, size)
        if chosen is not None:
            span = chosen
            status = 206
            headers.append((b"content-range", b"bytes %d-%d/%d" % (span[0], span[1] - 1, size)))
    headers.append((b"content-length", b"%d" % (span[1] - span[0])))
    return ReadPlan(status, headers, None if method == "HEAD" else span)


def html_headers(content_security_policy: str) -> list[tuple[bytes, bytes]]:
    """The HTML view: its own CSP (hashed script and style, nothing else
    loads) instead of the sandbox every text response gets."""
    return [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"vary", b"accept, accept-encoding"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", content_security_policy.encode()),
        (b"x-robots-tag", b"noindex, nofollow"),
        # Not no-referrer: under it a browser sends ``Origin: null`` with
        # the form's post, which is_cross_site must refuse. same-origin
        # still tells no other site which paste a link was followed from.
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]


def text_headers(state: str) -> list[tuple[bytes, bytes]]:
    """Selected lines of a paste (?tail, ?lines, ?grep, ?ansi=strip)."""
    return [
        (b"content-type", TEXT_PLAIN),
        (b"x-paste-state", state.encode()),
        (b"vary", b"accept, accept-encoding"),
        *SAFETY_HEADERS,
    ]


def live_headers() -> list[tuple[bytes, bytes]]:
    """A followed live paste: no length (chunked), never cached, and a hint
    to buffering proxies (nginx) to pass each piece on at once."""
    return [
        (b"content-type", TEXT_PLAIN),
        (b"cache-control", b"no-store"),
        (b"x-paste-state", b"open"),
        (b"x-accel-buffering", b"no"),
        *SAFETY_HEADERS,
    ]


def text_response(status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    body = text.encode()
    headers = [
        (b"content-type", TEXT_PLAIN),
        (b"content-length", b"%d" % len(body)),
        *SAFETY_HEADERS,
        *(extra or []),
    ]
    return Response(status, headers, body)


def json_response(status: int, document: dict[str, object], extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    """A JSON answer for scripts: one object, UTF-8, one line and a newline
    (so ``curl`` output ends cleanly in a terminal too)."""
    body = (json.dumps(document, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode()
    headers = [
        (b"content-type", APPLICATION_JSON),
        (b"content-length", b"%d" % len(body)),
        *SAFETY_HEADERS,
        *(extra or []),
    ]
    return Response(status, headers, body)


def page_response(status: int, page: str, extra: list[tuple[bytes, bytes]] | None = None, *,
                  content_security_policy: str = pages.PAGE_CSP) -> Response:
    """An HTML page of ``core.pages`` (never cached: most carry a one-time
    token or a refusal)."""
    body = page.encode()
    headers = [
        *html_headers(content_security_policy),
        (b"content-length", b"%d" % len(body)),
        *(extra or []),
    ]
    return Response(status, headers, body)


def error_response(error: PasteError, dialect: Dialect = Dialect.TEXT) -> Response:
    """The one place a PasteError becomes an HTTP answer: ``error: MESSAGE``
    as text, ``{"error": MESSAGE, "status": N}`` as JSON, or a page saying
    the same line for a browser; the same status and headers each way."""
    extra: list[tuple[bytes, bytes]] = []
    if isinstance(error, MethodNotAllowed):
        extra.append((b"allow", error.allow.encode()))
    if isinstance(error, RangeNotSatisfiable):
        extra.append((b"content-range", b"bytes */%d" % error.size))
    if isinstance(error, RateLimited):
        extra.append((b"retry-after", b"%d" % error.retry_after_s))
    message = error.message if error.http_status != 500 or error.reason != "internal" else "internal error"
    if dialect is Dialect.JSON:
        return json_response(error.http_status, {"error": message, "status": error.http_status}, extra)
    if dialect is Dialect.HTML:
        retry = error.retry_after_s if isinstance(error, RateLimited) else None
        return page_response(error.http_status, pages.render_error(error.http_status, message, retry_after_s=retry), extra)
    return text_response(error.http_status, f"error: {message}\n", extra)


@dataclass(frozen=True, slots=True)
class CreatedPaste:
    """What the answer to a create tells: the paste's URL and key, its
    delete token (shown only here, once), when it expires, its size once
    stored and how many secrets were masked (None: redaction was off)."""

    url: str
    key: str
    token: str
    expires_ms: int
    size: int
    redacted: int | None


def created_response(created: CreatedPaste, dialect: Dialect, *, notice: str | None = None) -> Response:
    """201 to a create: the URL line (what curl users have always got), or
    for ``Accept: application/json`` every field a script needs. The
    headers say the same either way (Location, X-Delete-Token, X-Expires).

    A browser's form post (HTML, with the one-time ``notice`` left for it)
    is answered ``303 See Other`` to the paste's view, which shows the
    notice once: the delete token is in neither a header nor the address."""
    if dialect is Dialect.HTML and notice is not None:
        # Relative (RFC 9110 10.2.2): the form's own site, under any prefix.
        location = f"{created.key}?created={notice}"
        return Response(303, [(b"location", location.encode()), (b"content-type", TEXT_PLAIN),
                              (b"cache-control", b"no-store")], (created.url + "\n").encode())
    headers = [
        (b"location", created.url.encode()),
        (b"x-delete-token", created.token.encode()),
        (b"x-expires", http_date(created.expires_ms)),
        *([(b"x-redacted", b"%d" % created.redacted)] if created.redacted is not None else []),
    ]
    if dialect is Dialect.JSON:
        document: dict[str, object] = {
            "url": created.url,
            "key": created.key,
            "expires": units.iso_utc(created.expires_ms, millis=False),
            "delete_token": created.token,
            "size": created.size,
            "redacted": created.redacted or 0,
        }
        return json_response(201, document, headers)
    return Response(201, [(b"content-type", TEXT_PLAIN), *headers], (created.url + "\n").encode())


def meta_response(key: str, url: str, meta: PasteMeta, *, size: int, lines: int) -> Response:
    """``GET /KEY?meta``: what a script may know of a paste, never its token
    (``size`` and ``lines``: of the bytes so far, for an open live paste).
    Never cached: a live paste grows, and a burn-after-read one is private."""
    document: dict[str, object] = {
        "key": key,
        "url": url,
        "size": size,
        "lines": lines,
        "created": units.iso_utc(meta.created_ms, millis=False),
        "expires": units.iso_utc(meta.expires_ms, millis=False),
        "state": meta.state,
        "burn": meta.burn,
        "truncated": meta.truncated,
    }
    return json_response(200, document, [(b"cache-control", b"no-store")])


def usage_response(dialect: Dialect, usage: str, form: str) -> Response:
    """``GET /``: the usage text, byte for byte as curl has always got it,
    or for a browser the paste form (its CSP lets it post here)."""
    vary = [(b"vary", b"accept")]
    if dialect is Dialect.HTML:
        return page_response(200, form, vary, content_security_policy=pages.FORM_CSP)
    return text_response(200, usage, vary)


def usage_text(
    base_url: str,
    tcp_host: str,
    tcp_port: int,
    *,
    max_size: str,
    default_expire: str,
    max_expire: str,
    live_port: int | None = None,
) -> str:
    live = (
        f"""
LIVE (URL first, then follow the log while it is written)
  ./long-job.sh 2>&1 | nc -N {tcp_host} {live_port}
  curl -N {base_url}/KEY                              # follows until the job ends
"""
        if live_port
        else ""
    )
    return f"""ncpaste: pipe text in, get a URL out.

  $ make test 2>&1 | nc {tcp_host} {tcp_port}
  {base_url}/k7Qm2xTfL9aR

  $ curl {base_url}/k7Qm2xTfL9aR          # the exact bytes back

NETCAT
  cat build.log | nc -N {tcp_host} {tcp_port}     # -N: URL at once on end of input
  cat build.log | nc {tcp_host} {tcp_port}        # plain nc: URL after a short idle gap
  (echo '#!ncpaste expire=1h alias=build-42'; make 2>&1) | nc -N {tcp_host} {tcp_port}

  Options go on an optional first line starting with '#!ncpaste':
    expire=DURATION   30s 10m 1h 2d 1w (default {default_expire}, at most {max_expire})
    alias=NAME        custom name: A-Z a-z 0-9 . _ - (3-64 characters)
    burn=1            delete after the first full read
    token=1           also print a delete token on a second line
    redact=1          mask secrets (keys, tokens, passwords) before storing

HTTP
  curl --data-binary @build.log {base_url}/
  curl -F f=@build.log {base_url}/
  make 2>&1 | curl -F 'f=<-' {base_url}/
  curl -T build.log {base_url}/build-42                  # PUT: create alias
  curl --data-binary @build.log '{base_url}/?expire=1h&burn=1'
  curl -H 'Range: bytes=-2000' {base_url}/KEY            # the last 2000 bytes
  curl -X DELETE -H 'X-Delete-Token: TOKEN' {base_url}/KEY

  A create answers 201 with the URL; headers X-Delete-Token and X-Expires.

JSON (for scripts)
  url=$(curl -s -H 'Accept: application/json' --data-binary @build.log {base_url}/ | jq -r .url)
  curl -s -H 'Accept: application/json' --data-binary @build.log {base_url}/
    {{"url": ..., "key": ..., "expires": ..., "delete_token": ..., "size": ..., "redacted": ...}}
  curl -s '{base_url}/KEY?meta'        # size, lines, created, expires, state, burn
  ?meta never burns a burn-after-read paste and never shows its token.
  With that Accept header, errors are {{"error": "MESSAGE", "status": N}}.

READING
  curl {base_url}/KEY                                   # the exact bytes
  curl '{base_url}/KEY?tail=50'                         # the last 50 lines
  curl '{base_url}/KEY?lines=1400-1450'                 # a line range ('1400-': to the end)
  curl '{base_url}/KEY?grep=error&i'                    # matching lines, numbered (&i: any case)
  curl '{base_url}/KEY?grep=FAIL&tail=3&ansi=strip'     # the last 3 matches, without colours
  Order: lines, then grep, then tail, then ansi=strip, whatever the order given.
  In a browser the same URL shows a view with line numbers and colours
  (#L42 marks a line, #L40-L60 a range); ?raw gives browsers the bytes.
{live}
LIMITS
  Text only (UTF-8, no NUL bytes), at most {max_size} a paste.
"""
