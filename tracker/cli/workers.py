"""`tracker serve --workers N`: N processes accept on one port (SO_REUSEPORT).

The parent starts the embedded servers if it is to run them, gives every worker the
same settings, restarts a worker that dies, and on SIGTERM/SIGINT passes the signal on
and waits. The flush lease in Redis lets one worker flush at a time. Metrics are kept by
prometheus-client's multiprocess mode in a directory of this run, so that a scrape that
lands on any worker reports the sum over all of them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from tracker.core.settings import Settings
from tracker.ops.embedded import EmbeddedServers

log = logging.getLogger("tracker")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
POLL_S = 0.5


def _worker(settings: Settings, run_flusher: bool, metrics_dir: str) -> None:
    from tracker.ops.logs import configure_logging
    from tracker.web.server import run, serve

    configure_logging(settings)

    async def main() -> None:
        await serve(
            settings, run_flusher=run_flusher, reuse_port=True, metrics_dir=Path(metrics_dir)
        )

    run(main)


def serve_workers(settings: Settings, workers: int, *, run_flusher: bool) -> None:
    servers = None
    if settings.embedded:
        servers = EmbeddedServers.under(settings.data_dir)
        redis_url, database_url = servers.start()
        settings = settings.with_overrides(redis_url=redis_url, database_url=database_url)
    metrics_dir = Path(tempfile.mkdtemp(prefix="tracker-metrics-"))
    # Read by prometheus-client when a worker imports it: the workers are spawned, so
    # they import it afresh with this set.
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_worker,
            args=(settings, run_flusher, str(metrics_dir)),
            name=f"tracker-worker-{index}",
        )
        process.start()
        return process

    processes = [start(index) for index in range(workers)]
    log.info("started %d workers on http://%s:%d", workers, settings.host, settings.port)
    try:
        while not stopping:
            time.sleep(POLL_S)
            for index, process in enumerate(processes):
                if process.exitcode is not None and not stopping:
                    log.warning(
                        "worker %d exited with %s; starting it again", index, process.exitcode
                    )
                    _forget(metrics_dir, process.pid)
                    processes[index] = start(index)
    finally:
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 4 * settings.shutdown_timeout_s + 5
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if servers is not None:
            servers.stop()
        log.info("tracker stopped")


def _forget(metrics_dir: Path, pid: int | None) -> None:
    """A dead worker's live gauges go; its counters stay in the sums."""
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
