"""Answers in progress, written down so that a crash cannot lose a question silently.

History stays consistent across a crash by itself (a turn is stored, question and answer
together, only once it is complete); what a crash loses is the question being answered
and those queued behind it. So every turn is recorded in one Redis hash when it arrives
(``<prefix>:b<bot>:pending``, one field per turn, named ``<instance>:<n>``) and removed
when it ends in any way the user saw (answered, failed with a message, stopped, skipped
by /stop).

Recording and removing are two awaited calls around a turn (`record` when the turn is
queued, `end` when it is over); a removal that fails is retried on each heartbeat.
Removed with the end means a moment after the final message went out.

Each process marks itself alive with a short-lived key (``...:instance:<id>``) refreshed
every ``heartbeat`` seconds. Every process sweeps the hash at start and then on each
heartbeat: a turn whose process is no longer alive and that is older than ``grace`` is
removed (HDEL decides which replica reports it) and its user is told that the answer was
lost and asked to send the message again. The bot does not answer it by itself: the
user may have moved on, and a second answer to an old question would be more confusing
than a short notice quoting it.

Without Redis there is nothing to recover after a restart, and the journal is not used.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bot.storage.background import Periodic
from bot.storage.keys import Keys
from bot.turns.types import Turn

log = logging.getLogger(__name__)

__all__ = ["PendingTurn", "TurnJournal"]

# Characters of the question kept to quote it back; the rest is not needed for that.
PREVIEW_CHARS = 80
# Redis answers in well under a millisecond; an answer is not held longer than this for
# its bookkeeping.
_REDIS_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """What is needed to tell a user that their question was lost."""

    chat_id: int
    thread_id: int | None
    user_id: int
    language: str | None
    preview: str
    owner: str  # instance id of the process answering it
    at: float  # wall-clock time it arrived (processes on other hosts compare it)


Notify = Callable[[PendingTurn], Awaitable[None]]


def _preview(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


class TurnJournal:
    """``record`` and ``end`` around each turn; ``start``/``stop`` with the dispatcher."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        notify: Notify,
        *,
        heartbeat: float,
        grace: float,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._notify = notify
        self._heartbeat = heartbeat
        self._grace = grace
        self._clock = clock
        self.instance = instance or f"{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self._hash = keys.pending()
        self._keys = keys
        self._alive_key = self._alive(self.instance)
        self._seq = itertools.count(1)
        # tickets whose removal failed (Redis away); retried on each heartbeat
        self._leftovers: set[str] = set()
        self._loop = Periodic("pending-turns", self._heartbeat_step, heartbeat)

    # -- around each turn ----------------------------------------------------------------

    async def record(self, turn: Turn) -> str | None:
        """Write down ``turn``; its ticket for `end`, or None if it could not be written
        (never raises: the answer itself reports an outage if it needs Redis too)."""
        entry = PendingTurn(
            chat_id=turn.key.chat_id,
            thread_id=turn.key.thread_id,
            user_id=turn.user_id,
            language=turn.language,
            preview=_preview(turn.text),
            owner=self.instance,
            at=self._clock(),
        )
        ticket = f"{self.instance}:{next(self._seq)}"
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.hset(self._hash, ticket, json.dumps(asdict(entry)))
        except (RedisError, TimeoutError) as exc:
            log.warning("could not record pending turn %s: %r", ticket, exc)
            if isinstance(exc, ResponseError):
                return None  # refused: certainly not written
            # a lost reply may hide a write that landed: removed at the end to be sure
        return ticket

    async def end(self, ticket: str | None) -> None:
        """The turn ended in a way its user saw: forget it."""
        if ticket is None:
            return
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.hdel(self._hash, ticket)
        except (RedisError, TimeoutError) as exc:
            log.warning("could not clear pending turn %s (will retry): %s", ticket, exc)
            self._leftovers.add(ticket)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Mark this process alive, then sweep and beat in the background."""
        if not self._loop.running:
            await self._beat()
            self._loop.start()

    async def stop(self) -> None:
        """Stop beating and say this process is gone, so its leftovers are reported soon."""
        await self._loop.stop()
        await self._clear_leftovers()
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.delete(self._alive_key)
        except (RedisError, TimeoutError) as exc:
            log.warning("could not remove the liveness mark: %s", exc)

    async def _heartbeat_step(self) -> None:
        try:
            await self.sweep()
        except (RedisError, TimeoutError) as exc:
            log.warning("pending turns: sweep failed: %s", exc)
        await self._beat()
        await self._clear_leftovers()

    async def _beat(self) -> None:
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.set(
                    self._alive_key, "1", px=max(1, round(self._heartbeat * 3 * 1000))
                )
        except (RedisError, TimeoutError) as exc:
            log.warning("pending turns: liveness mark failed: %s", exc)

    async def _clear_leftovers(self) -> None:
        if not self._leftovers:
            return
        leftovers = list(self._leftovers)
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.hdel(self._hash, *leftovers)
        except (RedisError, TimeoutError):
            return
        self._leftovers.difference_update(leftovers)

    # -- recovery ----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Report the turns of processes that died; returns how many were reported."""
        async with asyncio.timeout(_REDIS_TIMEOUT):
            raw = await self._redis.hgetall(self._hash)
        now = self._clock()
        orphans: list[tuple[str, PendingTurn]] = []
        owners: set[str] = set()
        for field, value in raw.items():
            ticket = field.decode() if isinstance(field, bytes) else field
            entry = _parse(value)
            if entry is None:
                log.warning("pending turns: dropping malformed entry %s", ticket)
                await self._redis.hdel(self._hash, ticket)
                continue
            if entry.owner != self.instance and now - entry.at >= self._grace:
                orphans.append((ticket, entry))
                owners.add(entry.owner)
        if not orphans:
            return 0
        alive = await self._alive_owners(owners)
        reported = 0
        for ticket, entry in orphans:
            if entry.owner in alive:
                continue
            # Whoever removes the field reports it: one notice even when replicas race.
            if not await self._redis.hdel(self._hash, ticket):
                continue
            log.info("answer in chat %s was lost by stopped process %s", entry.chat_id, entry.owner)
            try:
                await self._notify(entry)
                reported += 1
            except Exception as exc:  # e.g. the user blocked the bot meanwhile
                log.warning("could not tell chat %s about a lost answer: %s", entry.chat_id, exc)
        return reported

    async def _alive_owners(self, owners: set[str]) -> set[str]:
        ordered = sorted(owners)
        async with self._redis.pipeline(transaction=False) as pipe:
            for owner in ordered:
                pipe.exists(self._alive(owner))
            found = await pipe.execute()
        return {owner for owner, exists in zip(ordered, found, strict=True) if exists}

    def _alive(self, instance: str) -> str:
        return self._keys.instance(instance)


def _parse(value: str | bytes) -> PendingTurn | None:
    try:
        data = json.loads(value)
        return PendingTurn(
            chat_id=int(data["chat_id"]),
            thread_id=None if data.get("thread_id") is None else int(data["thread_id"]),
            user_id=int(data["user_id"]),
            language=data.get("language"),
            preview=str(data.get("preview", "")),
            owner=str(data["owner"]),
            at=float(data["at"]),
        )
    except (ValueError, TypeError, KeyError):
        return None
