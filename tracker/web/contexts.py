"""The app's cleanup contexts: each opens what the app holds, sets its AppKey, and closes
it on cleanup. create_app registers them in order (closed in reverse)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from tracker.services.opening import open_services
from tracker.web.app_keys import CLOCK, DEADLINES, KEYS, LOOP_LAG, METRICS, SERVICES, SETTINGS
from tracker.web.overload import Deadlines, LoopLag


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """Watches how late the event loop runs, for shedding load, and cancels the requests
    past their deadline (overload.py)."""
    lag = app[LOOP_LAG] = LoopLag(app[SETTINGS].max_loop_lag_s)
    deadlines = app[DEADLINES] = Deadlines(app[SETTINGS].request_timeout_s)
    task = asyncio.create_task(lag.watch(deadlines), name="tracker-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def services_ctx(run_flusher: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """Every service of the process (services/opening.py), the flusher running in the
    background when `run_flusher`."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(
            app[SETTINGS], app[KEYS], app[METRICS], app[CLOCK], run_flusher=run_flusher
        ) as services:
            app[SERVICES] = services
            yield

    return ctx
