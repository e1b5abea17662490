"""Live pastes: the URL first, then the log as it is written.

A writer connects to the live port and gets its URL at once; what it sends is
validated, committed to the store in small groups (at least every
``live_commit_interval_s``), and handed to readers who follow the paste with
``curl URL`` (chunked, ending when the writer ends). Readers are fed only
committed bytes, so nothing a reader was shown can be lost in a crash.

Memory per open paste is the uncommitted bytes (one commit interval's worth)
plus a small tail of committed bytes for readers that keep up; a reader that
falls behind the tail reads the committed groups from the store instead. A
slow reader never slows the writer or other readers: the writer never waits
for anyone, and each reader pulls at its own pace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ncpaste.config import Config, Current
from ncpaste.core import units
from ncpaste.core.errors import BadOption, EmptyPaste, NotText, PasteError, TooLarge
from ncpaste.core.ingest import PasteBuilder
from ncpaste.core.paste import LiveEnd
from ncpaste.logs import event
from ncpaste.net.guard import Guard, peer_ip_of
from ncpaste.net.live_state import LivePaste, LiveRegistry
from ncpaste.net.metrics import Metrics
from ncpaste.net.pastes import Pastes, Site
from ncpaste.net.streams import RECEIVE_BYTES, REPLY_TIMEOUT_S, close_quietly, error_line, refuse, send_quietly
from ncpaste.store import PasteStore

log = logging.getLogger(__name__)

#: Sends one piece to a reader (with its own timeout).
Send = Callable[[bytes], Awaitable[None]]

# Finishing a paste (one zstd frame of up to --max-size) after the writer is
# gone, also during shutdown: bounded so a stuck disk cannot hang the exit.
FINISH_TIMEOUT_S = 30.0


async def _read_options(stream: trio.abc.ReceiveStream, builder: PasteBuilder, window_ends: float) -> None:
    """Give the client until ``window_ends`` to send a ``#!ncpaste`` line first."""
    with trio.move_on_at(window_ends):
        while builder.in_preamble:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                break
            builder.feed(data)
    builder.end_preamble()


async def handle_live(
    stream: trio.SocketStream,
    *,
    current: Current,
    pastes: Pastes,
    site: Site,
    guard: Guard,
    metrics: Metrics,
    live: LiveRegistry,
) -> None:
    config = current.config
    registry = live
    peer = address = peer_ip_of(stream)
    counted: str | None = None
    held_by: str | None = None
    try:
        try:
            # One window for a PROXY header and the options line together:
            # the URL comes at most live_preamble_window_s after connecting.
            window_ends = trio.current_time() + config.live_preamble_window_s
            start = await guard.read_proxy_header(stream, peer, timeout_s=config.live_preamble_window_s)
            address, first = start if start is not None else (peer, b"")
            counted = guard.connect(address)
            builder = PasteBuilder(config.max_paste_bytes, accept_preamble=True)
            builder.feed(first)
            if builder.in_preamble:
                await _read_options(stream, builder, window_ends)
            options = builder.options
            if options.burn:
                raise BadOption("burn=1 is not available for live pastes: use the netcat port")
            guard.check_paste(counted)
            registry.begin(counted, config.live_per_client)
            held_by = counted
            guard.charge(counted, 0)
            plan = pastes.plan(options)
            created, token = await pastes.create_live(plan)
        except PasteError as error:
            metrics.paste_rejected("live", error.reason)
            event(log, "paste.refused", port="live", client=address, reason=error.reason)
            await refuse(stream, error_line(error), config)
            return
        reply = site.url(created.key) + "\n" + (f"token: {token}\n" if plan.token else "")
        await send_quietly(stream, reply.encode(), timeout_s=REPLY_TIMEOUT_S)
        await _follow_writer(stream, config, pastes.store, metrics, live, builder, created.key, address)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        if held_by is not None:
            registry.end(held_by)
        if counted is not None:
            guard.disconnect(counted)
        await close_quietly(stream)


async def _follow_writer(
    stream: trio.SocketStream,
    config: Config,
    store: PasteStore,
    metrics: Metrics,
    live: LiveRegistry,
    builder: PasteBuilder,
    key: str,
    client: str,
) -> None:
    """Receive until FIN / idle / limit, committing in groups; then finish."""
    paste = LivePaste(key)
    live.open[key] = paste
    metrics.live_opened()
    seq = 1
    ended = "incomplete"
    kept = False

    async def commit() -> None:
        nonlocal seq
        data = bytes(paste.pending)
        if data:
            await store.append_live(key, seq, data, paste.committed + len(data))
            seq += 1
            paste.on_commit(data)

    async def committer() -> None:
        while True:
            with trio.move_on_after(config.live_commit_interval_s):
                await paste.commit_wanted.wait()
            paste.commit_wanted = trio.Event()
            await commit()

    error: PasteError | None = None
    end = LiveEnd.INCOMPLETE
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer)
            paste.add(builder.drain())
            try:
                ended = await _receive(stream, builder, paste, config)
                end = LiveEnd.INCOMPLETE if ended == "incomplete" else LiveEnd.COMPLETE
            except TooLarge as exc:
                error, ended, end = exc, "size-limit", LiveEnd.SIZE_LIMIT
            except NotText as exc:
                error, ended, end = exc, "not-text", LiveEnd.NOT_TEXT
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(FINISH_TIMEOUT_S):
            try:
                await commit()
            except PasteError:
                pass
            kept = await store.finish_live(key, end)
            paste.close(end)
            live.open.pop(key, None)
            metrics.live_closed()
            if not kept:
                metrics.paste_rejected("live", "empty")
                event(log, "paste.refused", port="live", key=key, client=client, reason="empty")
            else:
                if end is not LiveEnd.INCOMPLETE:
                    metrics.paste_created("live", paste.committed)
                event(log, "paste.created", key=key, port="live", ended=ended, client=client, size=paste.committed)
    if not kept and not paste.committed and end is not LiveEnd.INCOMPLETE and error is None:
        error = EmptyPaste("empty paste: nothing was received; the URL is not kept")
    if error is not None:
        message = error_line(error).decode().rstrip("\n")
        if paste.committed and isinstance(error, (TooLarge, NotText)):
            message += "; the paste is kept up to there"
        await refuse(stream, (message + "\n").encode(), config)


async def _receive(stream: trio.abc.ReceiveStream, builder: PasteBuilder, paste: LivePaste, config: Config) -> str:
    """How the stream ended: ``fin``, ``idle`` or ``incomplete`` (writer
    vanished or the paste stayed open too long); raises at the size limit or
    on bytes that are not text (what came before is kept)."""
    with trio.move_on_after(config.live_max_open_s):
        while True:
            with trio.move_on_after(config.live_idle_timeout_s) as quiet:
                try:
                    data = await stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return "incomplete"
            if quiet.cancelled_caught:
                return "idle"
            if not data:
                builder.check_end()
                return "fin"
            room = config.max_paste_bytes - builder.size
            try:
                builder.feed(data[:room] if len(data) > room else data)
            finally:
                paste.add(builder.drain())
            if len(data) > room:
                raise TooLarge(f"paste too large: the limit is {units.format_size(config.max_paste_bytes)}")
    return "incomplete"


async def stream_to_reader(send: Send, paste: LivePaste, pastes: Pastes, metrics: Metrics) -> None:
    """Feed one reader everything committed, then each new group, until the
    writer ends. ``send(bytes)`` sends one piece (with its own timeout)."""
    position = 0
    paste.readers += 1
    metrics.readers_changed(1)
    try:
        while True:
            if position < paste.committed:
                piece = paste.from_memory(position)
                if piece is None:  # fell behind the tail: read from the store
                    piece = (await _committed(pastes, paste))[position : paste.committed]
                if piece:
                    await send(piece)
                    position += len(piece)
                continue
            if paste.closed:
                return
            await paste.changed()
    finally:
        paste.readers -= 1
        metrics.readers_changed(-1)


async def _committed(pastes: Pastes, paste: LivePaste) -> bytes:
    """The committed bytes from the store: the groups while open, the final
    frame once finished."""
    data, _ = await pastes.store.read_live(paste.key)
    if len(data) >= paste.committed or not paste.closed:
        return data
    stored = await pastes.store.get(paste.key)
    return await pastes.body(stored) if stored is not None else data


async def follow_in_store(send: Send, key: str, pastes: Pastes, metrics: Metrics, config: Config) -> None:
    """Follow a live paste whose writer is connected to another worker
    process: poll its committed groups once per commit interval until it is
    finished, then send the rest of the final paste."""
    position = 0
    last_group = 0
    # A writer ends its paste after live_idle_timeout_s of silence; nothing
    # new for twice that means its process died (another node, a crashed
    # worker): stop following instead of holding the reader for hours.
    orphaned_after_s = 2 * config.live_idle_timeout_s
    last_progress = trio.current_time()
    metrics.readers_changed(1)
    try:
        with trio.move_on_after(config.live_max_open_s):
            while True:
                stored = await pastes.store.get(key)
                if stored is None:
                    return
                if not stored.meta.is_open:
                    body = await pastes.body(stored)
                    if len(body) > position:
                        await send(body[position:])
                    return
                new, last_group = await pastes.store.read_live(key, last_group)
                if new:
                    await send(new)
                    position += len(new)
                    last_progress = trio.current_time()
                elif trio.current_time() - last_progress > orphaned_after_s:
                    event(log, "live.orphaned", logging.WARNING, key=key, hint="its writer's process is gone")
                    return
                await trio.sleep(config.live_commit_interval_s)
    finally:
        metrics.readers_changed(-1)
