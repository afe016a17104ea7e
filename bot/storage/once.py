""" "At most once per interval", across replicas: the first claim of a key within the
interval wins (``SET NX EX`` in Redis), and every claim is remembered in this process too.

The memory is all there is without Redis, and what still holds while Redis is
unreachable: then a claim this process has not seen succeeds (better a repeated update,
refusal or alert than a lost one).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["OncePerInterval"]

log = logging.getLogger(__name__)

# Redis answers in well under a millisecond; past this the claim is decided locally
# (the client's own retries could otherwise hold the caller for seconds).
_REDIS_TIMEOUT = 1.0
# Bound of the in-process memory: enough for minutes of a busy bot.
_LOCAL_MAX = 100_000


class OncePerInterval:
    def __init__(
        self,
        redis: aioredis.Redis | None,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._redis = redis
        self._interval = interval
        self._clock = clock
        # key -> expiry; one interval for all, so insertion order is expiry order
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def first(self, key: str) -> bool:
        """Claim ``key`` (a Redis key from `bot.storage.keys`): True for the first claim within
        the interval."""
        now = self._clock()
        seen = self._seen
        while seen:
            oldest, expiry = next(iter(seen.items()))
            if expiry > now and len(seen) < _LOCAL_MAX:
                break
            del seen[oldest]
        if key in seen:
            return False
        seen[key] = now + self._interval
        if self._redis is None:
            return True
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                claimed = await self._redis.set(
                    key, "1", nx=True, ex=max(1, math.ceil(self._interval))
                )
        except (RedisError, TimeoutError) as exc:
            log.warning("%s claimed locally only, Redis unavailable: %s", _kind(key), exc)
            return True
        return claimed is not None

    async def forget(self, key: str) -> None:
        """Give a claim back (what it guarded did not happen after all)."""
        self._seen.pop(key, None)
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.delete(key)
        except (RedisError, TimeoutError) as exc:
            log.warning("could not give back the claim on %s: %s", _kind(key), exc)


def _kind(key: str) -> str:
    """What a key guards, for logs: its name without the ids it carries."""
    return key.rsplit(":", 2)[-2] if key.count(":") >= 2 else "a key"
