"""Conversation storage: the `HistoryStore` interface, its Redis and in-memory stores."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.history.base import (
    ConversationContext,
    HistoryStore,
    HistoryUnavailable,
    Persona,
)
from bot.history.memory_store import MemoryHistoryStore
from bot.history.redis_store import RedisHistoryStore
from bot.storage.keys import ConversationKey, Keys
from bot.storage.redis_client import (
    CountingRedis,
    create_sentinel_or_cluster_client,
    is_sentinel_url,
)

__all__ = [
    "ConversationContext",
    "ConversationKey",
    "HistoryStore",
    "HistoryUnavailable",
    "MemoryHistoryStore",
    "Persona",
    "RedisHistoryStore",
    "create_history_store",
    "create_redis_client",
]

# Redis answers in well under a millisecond; a few seconds without a byte means it is
# gone, and the user is better served by "storage unavailable" than by a long hang.
_SOCKET_TIMEOUT = 5.0
_CONNECT_TIMEOUT = 3.0
# Checks an idle pooled connection before reuse, so a Redis restart costs no failed turn.
_HEALTH_CHECK_INTERVAL = 30
# 3 retries after 40, 80, 160 ms: rides out a reconnect without holding a turn for long.
_RETRY_BASE = 0.02
_RETRY_CAP = 0.5
_RETRIES = 3


def create_redis_client(
    redis_url: str, *, max_connections: int, pool_timeout: float, mode: str = "standalone"
) -> aioredis.Redis:
    """A client on a blocking pool: a burst beyond `max_connections` waits up to
    `pool_timeout` seconds for a free connection instead of failing. Responses are
    decoded to str. The caller closes it with `aclose()` (which closes the pool).
    Sentinel and Cluster (`mode`, or a redis+sentinel:// URL): see `bot.storage.redis_client`."""
    options = {
        "decode_responses": True,
        "socket_timeout": _SOCKET_TIMEOUT,
        "socket_connect_timeout": _CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": _HEALTH_CHECK_INTERVAL,
        "retry": Retry(
            ExponentialBackoff(cap=_RETRY_CAP, base=_RETRY_BASE),
            _RETRIES,
            supported_errors=(RedisConnectionError, RedisTimeoutError),
        ),
    }
    if mode != "standalone" or is_sentinel_url(redis_url):
        return create_sentinel_or_cluster_client(
            redis_url, mode=mode, max_connections=max_connections, **options
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url, max_connections=max_connections, timeout=pool_timeout, **options
    )
    return CountingRedis.from_pool(pool)


def create_history_store(
    redis_url: str | None,
    *,
    prefix: str,
    bot_id: int,
    max_messages: int,
    idle_ttl: int,
    max_connections: int,
    pool_timeout: float,
    mode: str = "standalone",
) -> tuple[HistoryStore, aioredis.Redis | None]:
    """The Redis store and its client, or the in-memory store and None without a URL.

    The store does not own the client: other features share it, and the caller closes it.
    Logging that history will not survive a restart is the caller's job.
    """
    if redis_url is None:
        return MemoryHistoryStore(max_messages=max_messages), None
    client = create_redis_client(
        redis_url, max_connections=max_connections, pool_timeout=pool_timeout, mode=mode
    )
    store = RedisHistoryStore(
        client, Keys(prefix, bot_id), max_messages=max_messages, idle_ttl=idle_ttl
    )
    return store, client
