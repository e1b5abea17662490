"""The HTTP port: an h11 connection loop that asks ``core.http`` what to answer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from urllib.parse import parse_qsl

import h11
import trio

from ncpaste.config import Current
from ncpaste.core import keys, reads, units
from ncpaste.core.errors import (
    BadOption,
    BadRequest,
    CrossSite,
    Denied,
    HeadersTooLarge,
    InvalidAlias,
    NotFound,
    NotImplementedHere,
    PasteError,
    Timeout,
    TooLarge,
    UnsupportedForm,
)
from ncpaste.core.http import (
    ALL_METHODS,
    ROBOTS_TXT,
    SAFETY_HEADERS,
    CreatedPaste,
    Dialect,
    Route,
    RouteKind,
    check_request,
    created_response,
    dialect_of,
    error_response,
    is_cross_site,
    meta_response,
    page_response,
    route,
    text_response,
    usage_response,
)
from ncpaste.core.ingest import PasteBuilder
from ncpaste.core.options import options_from_pairs, query_pairs
from ncpaste.core.pages import render_created, render_deleted
from ncpaste.core.slicing import LogQuery, count_lines, parse_log_query
from ncpaste.core.view import Notice, render_head, render_tail
from ncpaste.logs import event
from ncpaste.net import views
from ncpaste.net.deadlines import Deadline, Deadlines
from ncpaste.net.guard import Guard, peer_ip_of
from ncpaste.net.hot import Answer, HotCache, HotPaste
from ncpaste.net.live import follow_in_store, stream_to_reader
from ncpaste.net.live_state import LiveRegistry
from ncpaste.net.metrics import Metrics
from ncpaste.net.multipart import MAX_FORM_OVERHEAD_BYTES, FormPaste, boundary_of
from ncpaste.net.pastes import Pastes, Site
from ncpaste.net.streams import RECEIVE_BYTES, close_quietly, drain, receive_size
from ncpaste.store import StoredPaste

log = logging.getLogger(__name__)

# Responses go out in pieces of this size so a slow reader is timed per piece.
SEND_PIECE_BYTES = 256 * 1024
# A body up to this size goes out joined to its head, in one send; copying a
# larger one costs more than a second send (GET 100 KiB: bench/bench.py).
JOIN_MAX_BYTES = 16 * 1024
# A body sent with a request that takes none (GET, DELETE) is read and thrown
# away up to this much to keep the connection; beyond it we close instead.
MAX_DISCARD_BYTES = 64 * 1024
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


# The delete button's form is one token field; a body longer than this is not it.
MAX_DELETE_FORM_BYTES = 1024

# Events are immutable: one end-of-message serves every response.
_END = h11.EndOfMessage()


def _response(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))


class _Close(Exception):
    """The connection cannot go on (peer gone, timed out, or framing lost)."""


class HttpConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        current: Current,
        pastes: Pastes,
        site: Site,
        guard: Guard,
        metrics: Metrics,
        hot: HotCache,
        live: LiveRegistry,
        deadlines: Deadlines,
    ) -> None:
        self.stream = stream
        # The snapshot current when the connection opened, for all of it.
        self.config = current.config
        self.pastes, self.store, self.site = pastes, pastes.store, site
        self.metrics, self.hot, self.live = metrics, hot, live
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.http_max_header_bytes
        )
        self.guard = guard
        self.peer = peer_ip_of(stream)
        #: The client of every request on this connection; None behind a
        #: trusted proxy without PROXY header (then X-Forwarded-For says).
        self.client: str | None = self.peer
        #: The limiter key this connection is counted under, if any.
        self.counted: str | None = None
        #: A refusal of the whole connection, answered to its first request.
        self.refusal: PasteError | None = None
        #: Status and body bytes of the current response, for the request log.
        self.status = 0
        self.sent_bytes = 0
        #: How the current request's answers are written (its Accept): text,
        #: JSON for scripts, or HTML pages for a browser; errors too.
        self.dialect = Dialect.TEXT
        self._deadlines = deadlines
        #: The connection's one deadline, from ``serve`` on.
        self._deadline: Deadline

    # -- the connection loop ---------------------------------------------------

    async def _admit(self) -> bool:
        """Find out who the client is and count the connection. False: close."""
        if self.guard.is_trusted(self.peer):
            start = await self.guard.read_proxy_header(
                self.stream, self.peer, timeout_s=self.config.http_header_timeout_s
            )
            if start is None:
                return False
            address, rest = start
            self.conn.receive_data(rest)
            proxied = address != self.peer
            self.client = address if proxied else None
            if not proxied:
                return True  # clients are identified per request
        try:
            self.counted = self.guard.connect(self.client or self.peer)
        except PasteError as error:
            self.refusal = error
        return True

    async def serve(self) -> None:
        try:
            # One deadline for the whole connection: each wait (for a
            # request head, between requests, for a send to finish) sets it
            # instead of entering a cancel scope of its own (net/deadlines.py
            # says why). When it passes, the connection closes quietly, as
            # each wait's timeout says.
            with self._deadlines.watching() as self._deadline:
                await self._serve_requests()
        finally:
            if self.counted is not None:
                self.guard.disconnect(self.counted)
            await close_quietly(self.stream)

    def _wait(self, seconds: float) -> None:
        """The next await may take ``seconds`` at most (then the connection closes)."""
        self._deadline.wait(seconds)

    def _no_wait(self) -> None:
        self._deadline.clear()

    async def _serve_requests(self) -> None:
        try:
            try:
                if not await self._admit():
                    return
            except PasteError as refused:  # a bad PROXY header: no HTTP is possible
                log.info("http connection refused: %s", refused.reason)
                return
            wait = self.config.http_header_timeout_s
            while True:
                self._wait(wait)
                event = await self._next_event()
                self._no_wait()
                if isinstance(event, h11.ConnectionClosed):
                    return  # peer closed: close quietly
                if not isinstance(event, h11.Request):
                    return  # h11 only pauses between cycles: a request comes first
                await self._answer(event)
                if self.conn.our_state is not h11.DONE or not await self._finish_request():
                    return
                self.conn.start_next_cycle()
                wait = self.config.http_keepalive_timeout_s
        except h11.RemoteProtocolError as exc:
            error: PasteError
            if exc.error_status_hint == 431:
                error = HeadersTooLarge("request headers too large")
            elif exc.error_status_hint == 501:
                error = NotImplementedHere("transfer coding not implemented: send chunked or Content-Length")
            else:
                error = BadRequest("malformed HTTP request")
            with contextlib.suppress(_Close, trio.BrokenResourceError, trio.ClosedResourceError):
                await self._try_send_error(error)
        except (_Close, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _finish_request(self) -> bool:
        """Consume the rest of a request we answered without its body (the
        end-of-message of a GET, a body sent with DELETE), so the connection
        can serve the next request. A GET's end is usually buffered already:
        then nothing waits."""
        discarded = 0
        while self.conn.their_state is h11.SEND_BODY:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self._wait(self.config.http_body_idle_timeout_s)
                event = await self._next_event()
                self._no_wait()
            if isinstance(event, h11.Data):
                discarded += len(event.data)
                if discarded > MAX_DISCARD_BYTES:
                    return False
            elif isinstance(event, h11.ConnectionClosed):
                return False
        return self.conn.their_state is h11.DONE

    async def _next_event(self, receive_bytes: int = RECEIVE_BYTES) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # NEED_DATA was just excluded
            data = await self.stream.receive_some(receive_bytes)
            self.conn.receive_data(bytes(data) if isinstance(data, bytearray) else data)

    async def _answer(self, request: h11.Request) -> None:
        # raw_items() is a plain list (iterating h11's Headers goes item by
        # item through Sequence.__getitem__): the same sizes, names as sent.
        raw_headers = request.headers.raw_items()
        headers = {name.lower(): value for name, value in raw_headers}
        accept = headers.get(b"accept")
        self.dialect = dialect_of(None if accept is None else accept.decode("latin-1"))
        head_bytes = len(request.target) + sum(len(n) + len(v) + 4 for n, v in raw_headers)
        if head_bytes > self.config.http_max_header_bytes:
            # h11 bounds only a head that arrives in pieces; a whole one can
            # come in a single read, so the limit is checked here too.
            await self._try_send_error(HeadersTooLarge("request headers too large"))
            return
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        started = trio.current_time()
        self.status, self.sent_bytes = 0, 0
        client = self.client or self.peer
        where: Route | None = None
        try:
            if self.refusal is not None:
                raise self.refusal
            if self.client is None:
                client = self.guard.forwarded_client(self.peer, list(request.headers))
            key = self.guard.key_for(client)
            check_request(request.http_version, headers)
            where = route(method, target)
            await self._dispatch(method, where, headers, client, key)
        except PasteError as error:
            if where is not None and where.kind.creates:
                self.metrics.paste_rejected("http", error.reason)
            await self._try_send_error(error)
        except (_Close, trio.BrokenResourceError, trio.ClosedResourceError):
            raise
        except h11.RemoteProtocolError:
            # The framing broke mid-request (a peer that closed during its
            # body, as slowhttptest's -B does): the connection loop answers
            # it, if it still can, and closes. Nothing was stored.
            raise
        except Exception:
            log.exception("internal error answering %s", method)
            await self._try_send_error(PasteError("internal error"))
        finally:
            self._account(where, method, client, started)

    def _account(self, where: Route | None, method: str, client: str, started: float) -> None:
        """Metrics and the one log line of a request (never its body or token)."""
        elapsed = trio.current_time() - started
        metrics = self.metrics
        kind = where.kind if where is not None else None
        if kind is not None and kind.creates:
            metrics.observe_request("create", elapsed)
        elif kind is RouteKind.READ:
            metrics.observe_request("read", elapsed)
            metrics.bytes_out(self.sent_bytes)
        if not log.isEnabledFor(logging.INFO):
            return  # the fields below cost more than the check, per request
        event(
            log,
            "http.request",
            client=client,
            method=method,
            route=kind.value if kind is not None else "invalid",
            key=where.key if where is not None and where.key else "-",
            status=self.status,
            bytes=self.sent_bytes,
            ms=round(elapsed * 1000, 2),
        )

    async def _dispatch(
        self, method: str, where: Route, headers: dict[bytes, bytes], client: str, key: str
    ) -> None:
        await _HANDLERS[where.kind](self, _Request(method, where, headers, client, key))

    async def _usage(self, request: _Request) -> None:
        """The usage text, byte for byte, or for a browser the paste form."""
        response = usage_response(self.dialect, self.site.usage, self.site.form)
        await self._send(200, response.headers, b"" if request.method == "HEAD" else response.body)

    async def _options(self, request: _Request) -> None:
        await self._send(200, [(b"allow", ALL_METHODS.encode()), *SAFETY_HEADERS], b"")

    async def _healthz(self, request: _Request) -> None:
        await self.store.ping()
        await self._send_text(request.method, 200, "ok\n")

    async def _robots(self, request: _Request) -> None:
        await self._send_text(request.method, 200, ROBOTS_TXT.decode())

    async def _metrics(self, request: _Request) -> None:
        if not self.site.metrics_allowed(request.client):
            raise Denied("metrics are not served to your address")
        body, content_type = self.metrics.render()
        headers = [(b"content-type", content_type), *SAFETY_HEADERS]
        await self._send(200, headers, b"" if request.method == "HEAD" else body)

    async def _read_route(self, request: _Request) -> None:
        where = request.where
        query = parse_log_query(where.query)
        if query.meta:
            self.dialect = Dialect.JSON  # a script asking for metadata reads JSON, errors too
        await self._read(request.method, where.key or "", request.headers, query)

    async def _create_route(self, request: _Request) -> None:
        self._refuse_cross_site(request.headers)
        self.guard.check_paste(request.limiter_key)
        await self._create(request.where, request.headers, request.client, request.limiter_key)

    def _refuse_cross_site(self, headers: dict[bytes, bytes]) -> None:
        """Another site's page may not post in this visitor's name (README, "CSRF")."""
        origin, fetch_site, host = headers.get(b"origin"), headers.get(b"sec-fetch-site"), headers.get(b"host")
        if (origin is not None or fetch_site is not None) and is_cross_site(
            None if origin is None else origin.decode("latin-1"),
            None if fetch_site is None else fetch_site.decode("latin-1"),
            None if host is None else host.decode("latin-1"),
            self.site.base_url,
        ):
            raise CrossSite("cross-site posts are refused: paste from this site's own page, or with curl")

    async def _delete_form(self, request: _Request) -> None:
        """The one-time page's delete button: ``POST /KEY`` with ``token=``
        (a plain form cannot send DELETE, which stays the API)."""
        self._refuse_cross_site(request.headers)
        kind = request.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind != b"application/x-www-form-urlencoded":
            raise UnsupportedForm(
                "POST /KEY is the delete button's form (token=...): to delete from a script, "
                "send DELETE with X-Delete-Token"
            )
        body = bytearray()

        def collect(data: bytes) -> None:
            body.extend(data)
            if len(body) > MAX_DELETE_FORM_BYTES:
                raise TooLarge("delete form too large: it carries one token")

        await self._read_body(collect)
        fields = dict(parse_qsl(body.decode("latin-1"), max_num_fields=4))
        token = fields.get("token")
        if not token:
            raise BadRequest("the delete form needs its token field")
        key = request.where.key or ""
        await self.store.delete(key, token)
        if self.dialect is Dialect.HTML:
            answer = page_response(200, render_deleted(key))
        else:
            answer = text_response(200, f"deleted {key}\n")
        await self._send(answer.status, answer.headers, answer.body)

    async def _delete(self, request: _Request) -> None:
        token = request.headers.get(b"x-delete-token")
        if not token:
            raise BadRequest("send the delete token in the X-Delete-Token header")
        await self.store.delete(request.where.key or "", token.decode("latin-1"))
        await self._send(204, [], b"")

    # -- reads ---------------------------------------------------------------

    async def _read(self, method: str, key: str, headers: dict[bytes, bytes], query: LogQuery) -> None:
        """Fetch what ``core.reads`` decides, and send it."""
        store = self.store
        request = reads.ReadRequest.of(method, query, headers)
        paste = await store.get(key)
        if paste is not None and query.created is not None and reads.wants_notice(request):
            token = await self.pastes.take_notice(query.created, paste)
            if token is not None:
                notice = Notice(paste.key, self.site.url(paste.key), token, paste.meta.burn)
                request = replace(request, notice=notice)
        if paste is not None and reads.takes(request, paste.meta):
            paste = await store.take(key)  # of concurrent readers, one wins
        if paste is None:
            raise NotFound("no such paste (it may have expired)")
        decision = reads.decide(request, paste.meta)
        await _REPRESENTATIONS[decision.representation](self, request, paste, decision)

    async def _send_raw_paste(self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision) -> None:
        hot = None if paste.meta.burn else self.hot.get(paste.key, paste.meta.checksum)
        payload: bytes | memoryview = b""
        if decision.encoding == "zstd":
            payload = paste.frame  # the stored frame, sent as is
        elif decision.encoding == "gzip":
            if hot is None:
                hot = await self._hot(paste)
            payload = hot.gzip()
        now_ms = self.pastes.clock_ms()
        # A hot paste read the same way again: the response built for the
        # first reader, without planning and validating it again.
        shared_max_age_s = self.config.shared_cache_ttl_s
        key = reads.raw_plan_key(
            request, paste.meta, now_ms, decision.encoding, len(payload), shared_max_age_s=shared_max_age_s
        ) if hot is not None else None
        answer = hot.answer(key) if hot is not None and key is not None else None
        if answer is not None:
            await self._send_answer(answer)
            return
        plan = reads.plan_raw(
            request, paste.meta, now_ms, decision, len(payload), shared_max_age_s=shared_max_age_s,
        )
        if plan.span is None:
            if hot is not None and key is not None:
                answer = Answer(_response(plan.status, plan.headers), None)
                hot.remember(key, answer)
                await self._send_answer(answer)
                return
            await self._send(plan.status, plan.headers, b"")
            return
        if decision.encoding is None:
            if hot is None:
                hot = await self._hot(paste)
            payload = hot.body
        start, end = plan.span
        whole = (start, end) == (0, len(payload))
        if hot is not None and key is not None and whole and len(payload) <= SEND_PIECE_BYTES:
            answer = Answer(_response(plan.status, plan.headers), hot.body_event(decision.encoding, payload))
            hot.remember(key, answer)
            await self._send_answer(answer)
            return
        view = payload if whole else memoryview(payload)[start:end]
        await self._send(plan.status, plan.headers, view)

    async def _send_answer(self, answer: Answer) -> None:
        """A response built before, with its body if it has one: in one send,
        or for a large body, head and body apart (joining them would copy it)."""
        conn = self.conn
        self.status = answer.response.status_code
        head = conn.send(answer.response) or b""
        if answer.data is None:
            await self._send_raw(head + (conn.send(_END) or b""))
            return
        self.sent_bytes += len(answer.data.data)
        body = (conn.send(answer.data) or b"") + (conn.send(_END) or b"")  # no end bytes: the length is in the head
        if len(body) < JOIN_MAX_BYTES:
            await self._send_raw(head + body)
            return
        await self._send_raw(head)
        await self._send_raw(body)

    async def _hot(self, paste: StoredPaste) -> HotPaste:
        """The verified plain bytes, from the hot cache or decompressed now."""
        body = await self.pastes.body(paste)
        if paste.meta.burn:
            return HotPaste(paste.meta.checksum, body)
        return self.hot.put(paste.key, paste.meta.checksum, body)

    async def _text_so_far(self, paste: StoredPaste) -> bytes:
        """The verified bytes of a finished paste, or what an open live
        paste has committed so far."""
        if paste.meta.is_open:
            return (await self.store.read_live(paste.key))[0]
        return (await self._hot(paste)).body

    async def _send_selected(self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision) -> None:
        """?tail, ?lines, ?grep, ?ansi=strip of a finished paste, or of a live one so far."""
        out = await views.selected(await self._text_so_far(paste), request.query)
        await self._send(200, list(decision.headers), b"" if decision.head_only else out)

    async def _send_html(self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision) -> None:
        """The HTML view of a finished paste, rendered and streamed in blocks."""
        await self._start_chunked(list(decision.headers))
        if not decision.head_only:
            body = (await self._hot(paste)).body
            await views.stream_html(self._send_piece, paste, body, self.site.base_url, request.notice)
        await self._send_raw(self.conn.send(_END))

    async def _send_html_follow(
        self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision
    ) -> None:
        """The HTML view of an open live paste, growing until its writer ends."""
        await self._start_chunked(list(decision.headers))
        if not decision.head_only:
            info = views.page_info(paste, self.site.base_url, paste.meta.size, None)
            await self._send_piece(render_head(info).encode())
            renderer = views.HtmlLines(self._send_piece)
            await self._follow(renderer.feed, paste)
            await renderer.finish()
            final = await self.store.get(paste.key)
            await self._send_piece(render_tail(views.page_info(final or paste, self.site.base_url, 0, None)).encode())
        await self._send_raw(self.conn.send(_END))

    async def _follow(self, send: Callable[[bytes], Awaitable[None]], paste: StoredPaste) -> None:
        self._no_wait()  # a quiet job may send nothing for minutes; each send has its deadline
        live = self.live.open.get(paste.key)
        if live is not None:
            await stream_to_reader(send, live, self.pastes, self.metrics)
        else:  # written through another worker process or node: follow the store
            await follow_in_store(send, paste.key, self.pastes, self.metrics, self.config)

    async def _start_chunked(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Begin a response whose length is not known yet (chunked)."""
        self.status = 200
        await self._send_raw(self.conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")))

    async def _send_piece(self, piece: bytes) -> None:
        """One piece of a chunked response, in bounded sends."""
        self.sent_bytes += len(piece)
        for start in range(0, len(piece), SEND_PIECE_BYTES):
            await self._send_raw(self.conn.send(h11.Data(data=piece[start : start + SEND_PIECE_BYTES])))

    async def _send_follow(self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision) -> None:
        """A live paste still being written, followed (chunked, until the writer ends)."""
        await self._start_chunked(list(decision.headers))
        await self._follow(self._send_piece, paste)
        await self._send_raw(self.conn.send(_END))

    async def _send_meta(self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision) -> None:
        """``?meta``: the paste's metadata as JSON; its size and line count
        are of the bytes committed so far when it is an open live paste."""
        body = await self._text_so_far(paste)
        response = meta_response(
            paste.key, self.site.url(paste.key), paste.meta, size=len(body), lines=count_lines(body)
        )
        await self._send(response.status, response.headers, b"" if decision.head_only else response.body)

    async def _send_notice(self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision) -> None:
        """The one-time notice alone: a burn-after-read or live paste just made."""
        assert request.notice is not None  # reads.decide chose NOTICE because of it
        page = render_created(request.notice).encode()
        await self._send(200, list(decision.headers), page)

    async def _send_open_snapshot(
        self, request: reads.ReadRequest, paste: StoredPaste, decision: reads.ReadDecision
    ) -> None:
        """HEAD and Range of an open live paste: from what is committed now."""
        body, _ = await self.store.read_live(paste.key)
        plan = reads.plan_open_snapshot(request, paste.meta, self.pastes.clock_ms(), len(body))
        if plan.span is None:
            await self._send(plan.status, plan.headers, b"")
            return
        start, end = plan.span
        await self._send(plan.status, plan.headers, body[start:end])

    # -- creates -------------------------------------------------------------

    async def _create(self, where: Route, headers: dict[bytes, bytes], client: str, key: str) -> None:
        config = self.config
        pairs = query_pairs(where.query)
        if where.kind is RouteKind.PUT:
            alias = where.key or ""
            try:
                keys.check_alias(alias)
            except ValueError as exc:
                raise InvalidAlias(f"invalid alias {alias!r}: {exc}") from None
            if any(name == "alias" for name, _ in pairs):
                raise BadOption("PUT /NAME names the alias already: drop ?alias=")
            pairs.append(("alias", alias))
        options_from_pairs(pairs)  # reject bad options before reading the body

        builder = PasteBuilder(config.max_paste_bytes)
        boundary = boundary_of(headers.get(b"content-type", b""))
        browser = self.dialect is Dialect.HTML
        form = FormPaste(boundary, builder, text_box=browser) if boundary is not None else None
        allowed = config.max_paste_bytes + (MAX_FORM_OVERHEAD_BYTES if form else 0)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > allowed:
            raise TooLarge(f"paste too large: the limit is {units.format_size(config.max_paste_bytes)}")

        await self._read_body(form.feed if form else builder.feed)
        if form is not None:
            form.finish()
            pairs += form.option_pairs
        options = options_from_pairs(pairs)
        _, body = builder.finish()
        plan = self.pastes.plan(options)
        self.guard.charge(key, len(body))
        created, token, redacted = await self.pastes.create(body, plan, via="http", client=client)
        self.metrics.paste_created("http", len(body))
        del body, builder
        # A browser's form post lands on the paste's page, which shows the
        # link and the delete token once (README, "Pasting from a browser").
        notice = await self.pastes.leave_notice(created.key, token) if browser and form is not None else None
        answer = created_response(
            CreatedPaste(
                self.site.url(created.key), created.key, token, created.expires_ms, created.size,
                redacted if plan.redact else None,
            ),
            self.dialect,
            notice=notice,
        )
        await self._send(answer.status, answer.headers, answer.body)

    async def _read_body(self, sink: Callable[[bytes], None]) -> None:
        config = self.config
        if self.conn.they_are_waiting_for_100_continue:
            await self._send_raw(
                self.conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            )
            self._no_wait()  # the body has its own timeouts, below
        received = 0
        with trio.move_on_after(config.max_upload_s) as whole:
            while True:
                with trio.move_on_after(config.http_body_idle_timeout_s) as gap:
                    event = await self._next_event(receive_size(received))
                if gap.cancelled_caught:
                    raise Timeout(f"request body stalled for {config.http_body_idle_timeout_s:g} s")
                if isinstance(event, h11.Data):
                    received += len(event.data)
                    sink(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return
                else:
                    raise _Close()
        assert whole.cancelled_caught
        raise Timeout(f"upload took longer than {config.max_upload_s:g} s")

    # -- sending -------------------------------------------------------------

    async def _send_text(self, method: str, status: int, text: str) -> None:
        response = text_response(status, text)
        await self._send(status, response.headers, b"" if method == "HEAD" else response.body)

    async def _send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes | memoryview) -> None:
        if not any(name == b"content-length" for name, _ in headers) and status not in (204, 304):
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        self.status = status
        self.sent_bytes += len(body)
        head = self.conn.send(_response(status, headers))
        if len(body) < JOIN_MAX_BYTES:
            # h11 takes any bytes-like body; its stubs say bytes.
            data = self.conn.send(h11.Data(data=body)) if body else b""  # type: ignore[arg-type]
            await self._send_raw(head + (data or b"") + (self.conn.send(_END) or b""))
            return
        await self._send_raw(head)
        view = memoryview(body)
        for start in range(0, len(view), SEND_PIECE_BYTES):
            piece = h11.Data(data=view[start : start + SEND_PIECE_BYTES])  # type: ignore[arg-type]  # bytes-like, as above
            for part in self.conn.send_with_data_passthrough(piece) or []:
                await self._send_raw(part)
        await self._send_raw(self.conn.send(_END))

    async def _send_raw(self, data: bytes | memoryview) -> None:
        """Send, within --http-send-timeout (else the connection closes).
        The deadline stays set afterwards (moving it costs; the next wait
        sets its own): what awaits anything but a send after sending, a
        follower or a body reader, clears it first (``_no_wait``)."""
        self._wait(self.config.http_send_timeout_s)
        await self.stream.send_all(data)

    async def _try_send_error(self, error: PasteError) -> None:
        """Answer with the error if the connection still allows a response."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            raise _Close()
        response = error_response(error, self.dialect)
        body_unread = not self._request_received()
        headers = response.headers
        if body_unread or error.ends_connection:
            headers = [*headers, (b"connection", b"close")]
        log.info("http request refused: status=%d reason=%s", response.status, error.reason)
        try:
            await self._send(response.status, headers, response.body)
        except h11.LocalProtocolError:
            raise _Close() from None
        if body_unread:
            await drain(self.stream, timeout_s=self.config.drain_timeout_s, max_bytes=self.config.drain_max_bytes)
            raise _Close()
        if error.ends_connection:
            raise _Close()


    def _request_received(self) -> bool:
        """Has the client sent all of its request? What is already buffered
        is taken without waiting (a GET's end of message usually is), so an
        error on a GET keeps the connection for the next request; a body
        still on its way means the connection must close after the answer."""
        conn = self.conn
        while conn.their_state is h11.SEND_BODY:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return False
            if not isinstance(event, (h11.Data, h11.EndOfMessage)):
                break  # NEED_DATA: the rest is not here yet
        return conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)


@dataclass(frozen=True, slots=True)
class _Request:
    """One request as its handler needs it."""

    method: str
    where: Route
    headers: dict[bytes, bytes]
    client: str
    #: The per-client limiter's key for ``client``.
    limiter_key: str


# Route -> handler: one table instead of a chain of comparisons.
_HANDLERS: dict[RouteKind, Callable[[HttpConnection, _Request], Awaitable[None]]] = {
    RouteKind.USAGE: HttpConnection._usage,
    RouteKind.OPTIONS: HttpConnection._options,
    RouteKind.HEALTHZ: HttpConnection._healthz,
    RouteKind.ROBOTS: HttpConnection._robots,
    RouteKind.METRICS: HttpConnection._metrics,
    RouteKind.READ: HttpConnection._read_route,
    RouteKind.CREATE: HttpConnection._create_route,
    RouteKind.PUT: HttpConnection._create_route,
    RouteKind.DELETE: HttpConnection._delete,
    RouteKind.DELETE_FORM: HttpConnection._delete_form,
}


# Representation -> the driver that fetches and sends it.
_REPRESENTATIONS: dict[
    reads.Representation,
    Callable[[HttpConnection, reads.ReadRequest, StoredPaste, reads.ReadDecision], Awaitable[None]],
] = {
    reads.Representation.RAW: HttpConnection._send_raw_paste,
    reads.Representation.SELECTED: HttpConnection._send_selected,
    reads.Representation.HTML: HttpConnection._send_html,
    reads.Representation.HTML_FOLLOW: HttpConnection._send_html_follow,
    reads.Representation.FOLLOW: HttpConnection._send_follow,
    reads.Representation.OPEN_SNAPSHOT: HttpConnection._send_open_snapshot,
    reads.Representation.META: HttpConnection._send_meta,
    reads.Representation.NOTICE: HttpConnection._send_notice,
}
