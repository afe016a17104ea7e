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

import time
from collections.abc import Callable

import redis.asyncio as aioredis

from bot.storage.keys import Keys
from bot.storage.once import OncePerInterval

__all__ = ["UpdateDedup"]


class UpdateDedup:
    def __init__(
        self,
        redis: aioredis.Redis | None,
        keys: Keys,
        *,
        ttl: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._once = OncePerInterval(redis, interval=ttl, clock=clock)

    async def first_time(self, update_id: int) -> bool:
        """True for the first delivery of ``update_id`` within the TTL (seen by this
        process, or claimed in Redis by any)."""
        return await self._once.first(self._keys.update(update_id))
