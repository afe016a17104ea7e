"""Processing each Telegram update at most once.

Telegram redelivers an update when a webhook answer is late, a restarted poller may see
its last batch again, and two replicas may both receive one. The first process to claim
an ``update_id`` (``SET NX EX`` in Redis) handles it; the others drop it. Every claim is
also remembered in this process, which is all there is without Redis, and what still
catches local duplicates while Redis is unreachable: then updates are processed rather
than dropped (availability over strictness).

The check runs once per update, before it is dispatched (`handlers.dedup`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.keys import Keys

log = logging.getLogger(__name__)

__all__ = ["UpdateDedup"]

# Redis answers in well under a millisecond; past this the update is processed unchecked
# rather than held (the client's own retries could otherwise take seconds).
_REDIS_TIMEOUT = 1.0
# Bound of the in-process memory: enough for minutes of a busy bot's updates.
_LOCAL_MAX = 100_000


class UpdateDedup:
    def __init__(
        self,
        redis: aioredis.Redis | None,
        keys: Keys,
        *,
        ttl: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[int, float] = OrderedDict()  # update_id -> expiry

    async def first_time(self, update_id: int) -> bool:
        """Claim ``update_id``: True for the first claim within the TTL, False for a repeat
        (seen by this process, or claimed in Redis by any)."""
        if not self._claim_locally(update_id):
            return False
        if self._redis is None:
            return True
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                claimed = await self._redis.set(self._key(update_id), "1", nx=True, ex=self._ttl)
        except (RedisError, TimeoutError) as exc:
            log.warning("update %d not deduplicated, Redis unavailable: %s", update_id, exc)
            return True
        return claimed is not None

    def _key(self, update_id: int) -> str:
        return self._keys.bot_scoped(f"update:{update_id}")

    def _claim_locally(self, update_id: int) -> bool:
        now = self._clock()
        seen = self._seen
        while seen:
            oldest, expiry = next(iter(seen.items()))
            if expiry > now and len(seen) < _LOCAL_MAX:
                break
            del seen[oldest]
        if update_id in seen:
            return False
        seen[update_id] = now + self._ttl
        return True
