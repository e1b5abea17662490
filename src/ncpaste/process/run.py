"""Running the server process: signals, reload, watchdog, the --workers supervisor.

``run_serve`` is what ``ncpaste serve`` does once its configuration is
known: as one process, as the supervisor of N workers, or as one of them.
SIGINT/SIGTERM stop it gracefully (a second one at once), SIGHUP reloads
the configuration in place, and systemd (or the supervisor) is told when
it is ready and that its event loop still answers.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import trio

from ncpaste import logs
from ncpaste.commands.common import EXIT_FAILURE, EXIT_OK
from ncpaste.commands.settings import ConfigError
from ncpaste.config import Config
from ncpaste.process import systemd, workers

log = logging.getLogger("ncpaste")


def run_serve(config: Config, reread: Callable[[], Config], argv: list[str]) -> int:
    """``ncpaste serve`` with ``config``: one process, or the supervisor of
    --workers N, or one of its workers. ``reread`` builds the configuration
    anew on SIGHUP (raising ConfigError when it cannot)."""
    from ncpaste.net.server import StartupError, raise_fd_limit
    from ncpaste.store.factory import StoreOpenError

    logs.configure(config.log_level, config.log_format)
    raise_fd_limit()
    try:
        inherited = systemd.inherited_sockets()
        watchdog_s = systemd.watchdog_interval_s()
    except ValueError as exc:
        print(f"ncpaste: error: systemd environment: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    index = workers.worker_index()
    if index is None and config.workers > 1:
        return _supervise(config, argv, inherited, watchdog_s)
    if index is not None:
        count = int(os.environ.get(workers.WORKER_COUNT_ENV, "1"))
        config = workers.worker_config(config, count)
        inherited = workers.worker_sockets()
        fresh = reread
        reread = lambda: workers.worker_config(fresh(), count)  # noqa: E731
    failures: list[BaseException] = []
    try:
        trio.run(_serve_until_signalled, config, reread, inherited, watchdog_s, index in (None, 0))
    except* (StartupError, StoreOpenError) as group:
        failures.extend(_leaves(group))
    for error in failures:
        print(f"ncpaste: error: {error}", file=sys.stderr)
    return EXIT_FAILURE if failures else EXIT_OK


def _notify(state: str) -> None:
    """Tell systemd (or, as a worker, the supervisor: which worker we are)."""
    index = workers.worker_index()
    systemd.notify(state if index is None else f"{state}\nWORKER={index}")


async def _watchdog(interval_s: float) -> None:
    """Ping the watchdog from the event loop: if the loop is stuck, the pings
    stop and systemd (or the supervisor) restarts the process."""
    while True:
        _notify("WATCHDOG=1")
        await trio.sleep(interval_s)


async def _serve_until_signalled(
    config: Config,
    reread: Callable[[], Config],
    inherited: dict[str, list[Any]],
    watchdog_s: float | None,
    first_worker: bool,
) -> None:
    from ncpaste.net.server import serve

    async with trio.open_nursery() as nursery:

        async def serve_then_finish(*, task_status: trio.TaskStatus[Any]) -> None:
            await serve(
                config, inherited=inherited, run_jobs=first_worker, recover=workers.worker_index() is None,
                lock=workers.worker_index() is None, task_status=task_status,
            )
            nursery.cancel_scope.cancel()

        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            running = await nursery.start(serve_then_finish)
            _notify("READY=1\nSTATUS=serving")
            if watchdog_s:
                nursery.start_soon(_watchdog, watchdog_s)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    try:
                        fresh = reread()
                    except ConfigError as exc:
                        log.error("configuration not reloaded, keeping the running one: %s", exc)
                        continue
                    logs.set_level(fresh.log_level)
                    running.reload(fresh)
                    continue
                if running.stopping:
                    log.warning("second signal: stopping now")
                    nursery.cancel_scope.cancel()
                    return
                log.info("received %s", signal.Signals(signum).name)
                _notify("STOPPING=1")
                running.stop()


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The errors inside (possibly nested) trio nursery exception groups."""
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found




def _supervise(config: Config, argv: list[str], inherited: dict[str, list[Any]], watchdog_s: float | None) -> int:
    """--workers N: lock the data dir, bind, recover what a crash left open,
    start the workers. The supervisor holds the lock for all its workers."""
    from ncpaste.net.server import StartupError, lock_data_dir, recover_store
    from ncpaste.store.factory import StoreOpenError

    try:
        held = lock_data_dir(config)
    except StartupError as exc:
        print(f"ncpaste: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    with held:
        try:
            listeners = workers.bind_listeners(config, inherited)
        except OSError as exc:
            print(f"ncpaste: error: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILURE
        try:
            recovered = trio.run(recover_store, config)
        except StoreOpenError as exc:
            print(f"ncpaste: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        if recovered:
            log.warning("%d live pastes were left open by a crash: kept, marked incomplete", recovered)
        supervisor = workers.Supervisor(
            config.workers, argv, listeners, grace_s=config.shutdown_grace_s, watchdog_s=watchdog_s
        )
        code = trio.run(supervisor.run)
    if supervisor.failed_start:
        print(f"ncpaste: error: {supervisor.failed_start}", file=sys.stderr)
    return code


