"""Running the app: its resources opened and closed around an HTTP site, until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, TypeVar

from aiohttp import web

from tracker import __version__
from tracker.core.settings import Settings
from tracker.web.app import create_app
from tracker.web.app_keys import METRICS, SETTINGS
from tracker.web.protocol import TrackerServer

log = logging.getLogger("tracker")
LISTEN_BACKLOG: Final = 2048
GC_YOUNG_THRESHOLD: Final = 20_000
T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main())  # type: ignore[arg-type]
    return uvloop.run(main())  # type: ignore[arg-type]


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def started(app: web.Application) -> AsyncIterator[web.BaseRunner]:
    """The app's resources opened (embedded servers, Redis, PostgreSQL, flusher), and a
    runner for sites whose connections are TrackerRequestHandlers. On the way out: the
    sites stop, the requests in flight finish, then the app's resources close (the final
    flush among them)."""
    settings = app[SETTINGS]
    resources = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout_s
    )
    await resources.setup()
    try:
        assert resources.server is not None  # set by setup()
        server = TrackerServer(app, resources.server, settings, app[METRICS])
        runner = web.ServerRunner(server, shutdown_timeout=settings.shutdown_timeout_s)
        await runner.setup()
        try:
            yield runner
        finally:
            await runner.cleanup()
    finally:
        await resources.cleanup()


async def serve(
    settings: Settings,
    *,
    run_flusher: bool,
    reuse_port: bool = False,
    metrics_dir: Path | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT: then stop accepting, finish the requests in flight, run
    the final flush, close the connections (and stop embedded servers this process runs)."""
    app = create_app(settings, run_flusher=run_flusher, metrics_dir=metrics_dir)
    async with started(app) as runner:
        site = web.TCPSite(
            runner,
            settings.host,
            settings.port,
            reuse_port=reuse_port or None,
            # A burst of new connections waits in the kernel rather than being dropped
            # (a dropped SYN is retried only after a second, then three).
            backlog=LISTEN_BACKLOG,
        )
        await site.start()
        # What start-up created lives as long as the process: keep it out of the
        # collector's generations, so collections under load stay short.
        gc.collect()
        gc.freeze()
        # A request leaves few objects behind; at the default threshold (700) the young
        # generation was collected every few requests: 3-5 % of the CPU under load.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        log.info(
            "tracker %s listening on http://%s:%d",
            __version__,
            settings.host,
            settings.port,
            extra={"event": "started", "version": __version__, "port": settings.port},
        )
        await wait_for_signal()
        log.info("stopping: finishing requests, flushing, closing", extra={"event": "stopping"})
    log.info("tracker stopped", extra={"event": "stopped"})
