"""The netcat port: read until FIN or an idle gap, store, answer ``URL\\n``."""

from __future__ import annotations

import logging

import trio

from ncpaste.config import Config, Current
from ncpaste.core.errors import EmptyPaste, PasteError, Timeout
from ncpaste.core.ingest import PasteBuilder
from ncpaste.logs import event
from ncpaste.net.guard import Guard, peer_ip_of
from ncpaste.net.metrics import Metrics
from ncpaste.net.pastes import Pastes, Site
from ncpaste.net.streams import REPLY_TIMEOUT_S, close_quietly, error_line, receive_size, refuse, send_quietly

log = logging.getLogger(__name__)

async def receive_paste(
    stream: trio.abc.ReceiveStream, builder: PasteBuilder, config: Config, first: bytes = b""
) -> str:
    """Feed the builder until the client half-closes or goes quiet.

    Returns how the paste ended: ``"fin"`` or ``"idle"``. The idle timeout is
    a gap since the last byte (each chunk resets it), not a total budget.
    """
    builder.feed(first)
    upload_ends = trio.current_time() + config.max_upload_s
    # One scope for the whole upload, its deadline moved to whichever limit
    # comes first (this gap or the upload's end), not a scope per receive.
    with trio.CancelScope() as waits:
        while True:
            # Until the first byte of the body (an options line may come
            # first) the command may still be starting: allow the longer wait.
            gap = config.idle_timeout_s if builder.size else config.first_byte_timeout_s
            waits.deadline = min(trio.current_time() + gap, upload_ends)
            data = await stream.receive_some(receive_size(builder.size))
            if not data:
                return "fin"
            builder.feed(data)
    if trio.current_time() >= upload_ends:
        raise Timeout(f"upload took longer than {config.max_upload_s:g} s: send less at a time")
    if not builder.size:
        raise EmptyPaste(f"empty paste: nothing arrived within {gap:g} s")
    return "idle"


async def handle_netcat(
    stream: trio.SocketStream, *, current: Current, pastes: Pastes, site: Site, guard: Guard, metrics: Metrics
) -> None:
    config = current.config
    client: str | None = None
    peer = address = peer_ip_of(stream)
    try:
        try:
            start = await guard.read_proxy_header(stream, peer, timeout_s=config.first_byte_timeout_s)
            if start is None:
                raise EmptyPaste(f"empty paste: nothing arrived within {config.first_byte_timeout_s:g} s")
            address, first = start
            client = guard.connect(address)
            guard.check_paste(client)
            builder = PasteBuilder(config.max_paste_bytes, accept_preamble=True)
            ended = await receive_paste(stream, builder, config, first)
            input_done = trio.current_time()
            options, body = builder.finish()
            plan = pastes.plan(options)
            guard.charge(client, len(body))
            created, token, redacted = await pastes.create(body, plan, via=f"tcp-{ended}", client=address)
            metrics.paste_created("tcp", len(body))
            metrics.netcat_ended(ended)
        except PasteError as error:
            metrics.paste_rejected("tcp", error.reason)
            event(log, "paste.refused", port="tcp", client=address if client else peer, reason=error.reason)
            # An empty paste left nothing unread: its error line needs no drain.
            await refuse(stream, error_line(error), config, still_sending=not isinstance(error, EmptyPaste))
            return
        del body, builder  # the reply does not need the paste in memory
        reply = site.url(created.key) + "\n"
        if plan.token:
            reply += f"token: {token}\n"
        if plan.report_redactions and redacted:
            reply += f"redacted: {redacted}\n"
        await send_quietly(stream, reply.encode(), timeout_s=REPLY_TIMEOUT_S)
        metrics.observe_request("create", trio.current_time() - input_done)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client vanished; nothing of theirs was acknowledged
    finally:
        if client is not None:
            guard.disconnect(client)
        await close_quietly(stream)
