"""Redis clients for one server, a Sentinel set or a Cluster, counting failed commands.

`bot.history.create_redis_client` builds the standalone client and hands the other modes
here. URLs:

- standalone: ``redis://[:password@]host:6379/0`` (or ``rediss://``);
- Sentinel: ``redis+sentinel://[:password@]host1:26379,host2:26379/<master name>[/db]``
  (``[redis] mode = "sentinel"`` also reads a ``redis://`` URL this way); the password
  is the master's; the sentinels are asked without one;
- Cluster (``[redis] mode = "cluster"``): ``redis://[:password@]any-node:6379``. Every
  key of one chat carries the chat's hash tag, so a script touching one chat's keys runs
  in one slot.

The clients are typed as `redis.asyncio.Redis` for the code that uses them; a
`RedisCluster` offers the same commands, scripts and single-slot transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

__all__ = [
    "CountingRedis",
    "CountingRedisCluster",
    "SentinelRedis",
    "create_sentinel_or_cluster_client",
    "describe_redis",
    "is_sentinel_url",
    "on_redis_error",
]

ErrorHook = Callable[[str], None]


def _command_name(args: tuple[Any, ...]) -> str:
    if not args:
        return "unknown"
    name = args[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).lower()


class CountingRedis(aioredis.Redis):
    """A Redis client that reports every failed command (after its retries) to
    ``on_error``; pipelines are not counted."""

    on_error: ErrorHook | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        execute: Any = super().execute_command  # untyped in redis-py
        try:
            return await execute(*args, **options)
        except RedisError:
            if self.on_error is not None:
                self.on_error(_command_name(args))
            raise


class SentinelRedis(CountingRedis):
    """The master of a Sentinel set; closing it also closes the connections to the
    sentinels themselves."""

    sentinel: Any = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()


class CountingRedisCluster(RedisCluster):
    """`CountingRedis` for a Cluster."""

    on_error: ErrorHook | None = None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisError:
            if self.on_error is not None:
                self.on_error(_command_name(args))
            raise


def on_redis_error(client: aioredis.Redis, hook: ErrorHook) -> None:
    """Report the failed commands of `client` to `hook` (when it is one of ours)."""
    if isinstance(client, CountingRedis | CountingRedisCluster):
        client.on_error = hook


def is_sentinel_url(url: str) -> bool:
    return url.startswith("redis+sentinel://")


def create_sentinel_or_cluster_client(
    url: str, *, mode: str, max_connections: int, **options: Any
) -> aioredis.Redis:
    """A client for Sentinel (mode "sentinel" or a redis+sentinel:// URL) or Cluster.

    ``options`` are the connection options of the standalone client (timeouts, retry,
    decode_responses), applied to every connection.
    """
    if mode == "sentinel" or is_sentinel_url(url):
        return _sentinel_client(url, max_connections=max_connections, **options)
    if mode == "cluster":
        cluster = CountingRedisCluster.from_url(url, max_connections=max_connections, **options)
        return cast(aioredis.Redis, cluster)
    raise ValueError(f"unknown Redis mode {mode!r}")


def _sentinel_client(url: str, *, max_connections: int, **options: Any) -> aioredis.Redis:
    parts = urlsplit(url)
    hosts: list[tuple[str, int]] = []
    netloc = parts.netloc.rpartition("@")[2]
    for node in netloc.split(","):
        host, _, port = node.strip().rpartition(":")
        if not host:
            host, port = port, "26379"
        hosts.append((host.strip("[]"), int(port)))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise ValueError("REDIS_URL: a Sentinel URL names the master: .../<master name>[/db]")
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    socket_options = {
        name: options[name]
        for name in ("socket_timeout", "socket_connect_timeout")
        if name in options
    }
    sentinel_class: Any = Sentinel  # untyped in redis-py
    sentinel = sentinel_class(hosts, sentinel_kwargs=socket_options, **options)
    client = sentinel.master_for(
        service,
        redis_class=SentinelRedis,
        db=db,
        password=password,
        username=username,
        max_connections=max_connections,
    )
    client.sentinel = sentinel
    return cast(aioredis.Redis, client)


def describe_redis(url: str | None, mode: str) -> str:
    """Which Redis `url` names, for the start-up log: hosts, ports and db, never the
    password or user name."""
    if url is None:
        return "in memory (no REDIS_URL)"
    parts = urlsplit(url)
    query_db = parse_qs(parts.query).get("db", ["0"])[0]
    path = [segment for segment in parts.path.split("/") if segment]
    hosts = parts.netloc.rpartition("@")[2]
    if mode == "sentinel" or is_sentinel_url(url):
        master = path[0] if path else "?"
        db = path[1] if len(path) > 1 else "0"
        return f"sentinel {hosts}, master {master}, db {db}"
    if parts.scheme == "unix":
        return f"socket {parts.path}, db {query_db}"
    host = (hosts or "localhost") + ("" if parts.port else ":6379")
    db = path[0] if path else query_db
    tls = ", TLS" if parts.scheme == "rediss" else ""
    if mode == "cluster":
        return f"cluster via {host}{tls}"
    return f"{host}, db {db}{tls}"
