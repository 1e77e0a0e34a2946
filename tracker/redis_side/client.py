"""The Redis client: one server, or a Redis Cluster (TRACKER_REDIS_CLUSTER), and the
per-node clients that WAIT needs.

Neither client retries a command on its own: a retried script whose first reply was lost
would count twice. The cluster client still follows MOVED and ASK redirections (the
command did not run there) and refreshes its slot map after a failover; while a slot has
no primary, commands on it fail, and tracker answers 503.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError, SlotNotCoveredError
from redis.typing import EncodableT

from tracker.core.settings import Settings

RedisClient: TypeAlias = Redis | RedisCluster


class _HiredisPacking(AbstractConnection):
    """Commands packed by hiredis in C: redis-py packs them in Python, argument by
    argument, which for a round trip's script call (a dozen arguments per event) cost
    more than a sixth of ingest's time; hiredis packs the same bytes 5-8 times faster."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        # 'CLIENT SETNAME' is two arguments on the wire, as redis-py splits them.
        name = args[0]
        if isinstance(name, str):
            args = (*name.encode().split(), *args[1:])
        elif isinstance(name, bytes) and b" " in name:
            args = (*name.split(), *args[1:])
        return [hiredis.pack_command(args)]  # type: ignore[arg-type]


class _PackedConnection(_HiredisPacking, Connection):
    pass


class _PackedSSLConnection(_HiredisPacking, SSLConnection):
    pass


class _PackedUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


# Connections of a client (per node in a cluster).
REDIS_MAX_CONNECTIONS: Final = 64

_PACKED: Final[dict[type[AbstractConnection], type[AbstractConnection]]] = {
    Connection: _PackedConnection,
    SSLConnection: _PackedSSLConnection,
    UnixDomainSocketConnection: _PackedUnixConnection,
}


def _packed(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    return _PACKED.get(connection_class, connection_class)


def _pack_with_hiredis(client: Redis) -> Redis:
    """The client's connections, none open yet, of the hiredis-packing twin of the class
    its URL's scheme chose."""
    pool = client.connection_pool
    pool.connection_class = _packed(pool.connection_class)
    return client


def _options(timeout_s: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": False,
    }


def open_redis(
    url: str,
    *,
    timeout_s: float,
    max_connections: int = REDIS_MAX_CONNECTIONS,
    cluster: bool = False,
) -> RedisClient:
    """`url`: one server; with `cluster`, one or more nodes of the cluster (comma-separated),
    any of which tells the client the rest."""
    if not cluster:
        return _pack_with_hiredis(
            Redis.from_url(
                url,
                retry_on_timeout=False,
                max_connections=max_connections,
                health_check_interval=0,
                **_options(timeout_s),
            )
        )
    seeds = [urlsplit(part.strip()) for part in url.split(",") if part.strip()]
    first = seeds[0]
    ssl = first.scheme == "rediss"
    cluster_client = RedisCluster(
        startup_nodes=[ClusterNode(s.hostname or "127.0.0.1", s.port or 6379) for s in seeds],
        username=first.username,
        password=first.password,
        ssl=ssl,
        max_connections=max_connections,
        **_options(timeout_s),
    )
    # Nodes found later are made from these options; the seeds were made already.
    manager = cluster_client.nodes_manager
    packed = _packed(SSLConnection if ssl else Connection)
    manager.connection_kwargs["connection_class"] = packed
    for node in manager.startup_nodes.values():
        node.connection_class = packed  # type: ignore[assignment]
    return cluster_client


async def primary_infos(redis: RedisClient, section: str | None = None) -> list[dict[str, Any]]:
    """INFO of the server, or of every primary of the cluster."""
    if isinstance(redis, Redis):
        return [await redis.info(section) if section else await redis.info()]
    args = (section,) if section else ()
    found = await redis.info(*args, target_nodes=RedisCluster.PRIMARIES)
    return [info for info in found.values() if isinstance(info, dict)]


class RedisNodes:
    """The client to send a key's commands to when they must share one connection (WAIT
    and WAITAOF count the writes of their own connection): the server itself, or in a
    cluster a client of the primary that serves the key's slot, one per primary."""

    def __init__(self, redis: RedisClient, *, timeout_s: float) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self._clients: dict[str, Redis] = {}

    async def of(self, key: str) -> Redis:
        if isinstance(self.redis, Redis):
            return self.redis
        if not self.redis.nodes_manager.slots_cache:  # nothing asked of the cluster yet
            await self.redis.initialize()
        node = self.redis.get_node_from_key(key)
        if node is None:
            raise SlotNotCoveredError(f"no primary serves the slot of {key!r} now")
        client = self._clients.get(node.name)
        if client is None:
            client = self._clients[node.name] = _pack_with_hiredis(
                Redis(
                    host=node.host,
                    port=int(node.port),
                    username=self.redis.connection_kwargs.get("username"),
                    password=self.redis.connection_kwargs.get("password"),
                    health_check_interval=0,
                    **_options(self.timeout_s),
                )
            )
        return client

    async def topology_changed(self) -> None:
        """After a redirection or a lost node: ask the cluster for its slots again."""
        if isinstance(self.redis, RedisCluster):
            # A cluster in the middle of a failover may not answer yet: the next call
            # that needs the map asks again.
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
                await self.redis.nodes_manager.initialize()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


@contextlib.asynccontextmanager
async def opened_redis(settings: Settings, url: str) -> AsyncIterator[RedisClient]:
    redis = open_redis(url, timeout_s=settings.redis_timeout_s, cluster=settings.redis_cluster)
    try:
        yield redis
    finally:
        await redis.aclose()
