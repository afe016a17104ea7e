"""Processing each Telegram update at most once.

Telegram redelivers an update when a webhook answer is late, a restarted poller may see
its last batch again, and two replicas may both receive one. The first process to claim
an ``update_id`` (``SET NX EX`` in Redis) handles it; the others drop it. Every claim is
also remembered in this process, which is all there is without Redis, and what still
catches local duplicates while Redis is unreachable: then updates are processed rather
than dropped (availability over strictness).

A claim need not cost a round trip of its own: the turn that answers a message sends it
along with its context read (a `bot.history.Rider`) and learns the outcome before it asks
GLM or shows anything. Everything else settles its claim before it acts.
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

__all__ = ["UpdateClaim", "UpdateDedup"]

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

    def claim(self, update_id: int) -> UpdateClaim | None:
        """The claim of ``update_id`` to settle in Redis, or None for a repeat seen by this
        process."""
        if not self._claim_locally(update_id):
            return None
        return UpdateClaim(self, update_id)

    async def first_time(self, update_id: int) -> bool:
        """Claim ``update_id``: True for the first claim within the TTL, False for a repeat."""
        claim = self.claim(update_id)
        return claim is not None and await claim.settle()

    def _key(self, update_id: int) -> str:
        return self._keys.bot_scoped(f"update:{update_id}")

    def _command(self, update_id: int) -> tuple[str, ...]:
        return ("SET", self._key(update_id), "1", "NX", "EX", str(self._ttl))

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


class UpdateClaim:
    """One update's claim on Redis: settled by a rider of the turn's first round trip, or
    on its own with `settle()`. Redis failing counts as a first claim (see the module)."""

    __slots__ = ("_dedup", "_first", "_sent", "update_id")

    def __init__(self, dedup: UpdateDedup, update_id: int) -> None:
        self._dedup = dedup
        self.update_id = update_id
        self._first: bool | None = True if dedup._redis is None else None
        self._sent = False

    @property
    def settled(self) -> bool:
        return self._first is not None

    def rider(self) -> _ClaimRider | None:
        """The claim as a `bot.history.Rider`; None once sent or settled."""
        if self._first is not None or self._sent:
            return None
        self._sent = True
        return _ClaimRider(self)

    async def settle(self) -> bool:
        """True unless another delivery of the update claimed it first; sends the claim
        now if no store carried it."""
        if self._first is None:
            self._first = await self._send()
        return self._first

    async def _send(self) -> bool:
        redis = self._dedup._redis
        assert redis is not None  # settled at creation otherwise
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                reply: object = await redis.set(
                    self._dedup._key(self.update_id), "1", nx=True, ex=self._dedup._ttl
                )
        except (RedisError, TimeoutError) as exc:
            reply = exc
        return self._decide(reply)

    def _decide(self, reply: object) -> bool:
        if isinstance(reply, BaseException):
            log.warning("update %d not deduplicated, Redis unavailable: %s", self.update_id, reply)
            return True
        return reply is not None


class _ClaimRider:
    """`bot.history.Rider`: the claim's SET NX."""

    __slots__ = ("_claim",)

    def __init__(self, claim: UpdateClaim) -> None:
        self._claim = claim

    def command(self) -> tuple[str, ...]:
        claim = self._claim
        return claim._dedup._command(claim.update_id)

    def landed(self, reply: object) -> None:
        self._claim._first = self._claim._decide(reply)
