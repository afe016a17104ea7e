"""How many replicas serve the bot, so that together they keep Telegram's bot-wide budget.

Telegram allows a bot about 30 messages a second, however many processes send them. Each
replica schedules its own sends (`bot.streaming.ratelimit`) and takes an equal share of the budget:
``budget / live replicas``, never above the budget, never below ``_FLOOR_RATE``.

Presence is one sorted set, ``<prefix>:b<bot>:replicas`` (member: replica id; score: its
deadline on the Redis clock, in ms). Every ``interval`` seconds each replica runs one
script that renews its own deadline, drops the members past theirs and counts the rest.
A replica that stops cleanly removes itself; a crashed one is dropped ``_TTL_BEATS``
intervals after its last beat, and the others then take its share back.

Why an equal share rather than a token bucket in Redis: a shared bucket costs a round trip
per message, or per batch of messages (an answer's edits would then wait on Redis every
few sends; an answer costs 6 Redis round trips in all). The share costs
one round trip per replica per ``interval`` and none per message. What it gives up:

- a replica's unused share is not lent to a busier one. A load balancer spreads updates
  evenly over replicas, so their shares are used about evenly;
- for up to ``interval`` after a replica joins, the others still send at their previous
  share (a second replica joining one: 30 + 15 messages a second until the first one's
  next beat). Telegram may answer 429 then; the scheduler honours its retry_after.

Per-group budgets (20 messages a minute in a group) are not shared: a group, or a topic
of a forum, is one conversation, and its lease runs one answer at a time across every
replica, so answers of one group do not overlap. Consecutive answers of a group within a
minute may still run on different replicas, each counting only its own sends, and topics
of one forum may run on several replicas at once; Telegram's 429 in such a group pauses
only that group, for the time Telegram asks.

Without leases (one process, or polling), there is no registry: the budget is whole.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.storage.background import Periodic
from bot.storage.keys import Keys

__all__ = ["ReplicaRegistry", "bot_wide_share"]

log = logging.getLogger(__name__)

# A replica not heard from for this many intervals is gone.
_TTL_BEATS = 5
# Messages a second a replica may always send, however many replicas there are.
_FLOOR_RATE = 1.0
_REDIS_TIMEOUT = 2.0

# KEYS: the set. ARGV: replica id, ttl ms. Returns the replicas alive, this one included.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
"""

CountHook = Callable[[int], None]
ErrorHook = Callable[[str], None]


def bot_wide_share(budget: float, replicas: int) -> float:
    """One replica's share of the bot-wide budget (messages a second)."""
    return min(budget, max(_FLOOR_RATE, budget / max(1, replicas)))


class ReplicaRegistry:
    """This replica's presence mark, and the count of live replicas; `start`/`stop` with
    the dispatcher. `on_count` hears every change of the count (and the first one)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        interval: float,
        on_count: CountHook,
        on_error: ErrorHook | None = None,
        instance: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._redis = redis
        self._key = keys.replicas()
        self._interval = interval
        self._ttl_ms = max(1, round(interval * _TTL_BEATS * 1000))
        self._on_count = on_count
        self._on_error = on_error
        self.instance = instance or uuid.uuid4().hex
        self._beat_script = redis.register_script(_BEAT)
        self.count = 1
        self._reported: int | None = None
        self._failing = False
        self._loop = Periodic("replica-presence", self._beat, interval, wait_first=True)

    async def start(self) -> None:
        """Mark this replica present and learn the count, then beat in the background."""
        if self._loop.running:
            return
        await self.beat()
        self._loop.start()

    async def stop(self) -> None:
        """Stop beating and leave, so the others take this replica's share back soon."""
        await self._loop.stop()
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.zrem(self._key, self.instance)
        except (RedisError, TimeoutError) as exc:
            log.warning("replicas: could not leave (gone after expiry instead): %s", exc)

    async def beat(self) -> int:
        """Renew this replica's mark and count the live ones (the last count if Redis fails)."""
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                count = int(
                    await self._beat_script(keys=[self._key], args=[self.instance, self._ttl_ms])
                )
        except (RedisError, TimeoutError) as exc:
            if not self._failing:
                log.warning("replicas: presence mark failed, counting %d: %s", self.count, exc)
            self._failing = True
            if self._on_error is not None:
                self._on_error("replica_beat")
            count = self.count
        else:
            if self._failing:
                log.info("replicas: presence mark works again")
            self._failing = False
        self.count = max(1, count)
        if self.count != self._reported:
            log.info("replicas: %d live, sharing the bot-wide Telegram budget", self.count)
            self._reported = self.count
            self._on_count(self.count)
        return self.count

    async def _beat(self) -> None:
        await self.beat()
