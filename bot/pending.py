"""Answers in progress, written down so that a crash cannot lose a question silently.

History stays consistent across a crash by itself (a turn is stored, question and answer
together, only once it is complete); what a crash loses is the question being answered
and those queued behind it. So every turn is recorded in one Redis hash when it arrives
(``<prefix>:b<bot>:pending``, one field per turn, named ``<instance>:<n>``) and removed
when it ends in any way the user saw (answered, failed with a message, stopped, skipped
by /stop).

These writes cost no round trip of their own on a normal answer: the record rides on the
turn's context read and its removal on the append that stores the answer (`Rider`s of
the history store, sent in the same pipeline). A turn that arrives while its conversation
is busy is recorded at once on its own, since its context read may be far off (so is
every turn when replicas share conversation leases: another may hold the lease), and so
is one whose store cannot carry riders. A turn that ends without an append (an error,
a filtered answer, skipped by /stop) or whose removal did not land with it (Redis
failed) is removed on its own. Removed with the append means a moment before the final
message goes out: a crash in that moment costs the notice, though the answer is in the
history (and was streaming to the user).

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
import contextlib
import enum
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bot.background import halt
from bot.keys import Keys

if TYPE_CHECKING:
    from bot.conversation import Turn

log = logging.getLogger(__name__)

__all__ = ["JournalEntry", "PendingTurn", "TurnJournal"]

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


class _State(enum.Enum):
    NEW = "new"  # not sent yet
    RECORDED = "recorded"  # sent: in Redis, or maybe (a lost reply)
    CLEARED = "cleared"  # removed, never written, or left to the heartbeat's retries


class JournalEntry:
    """One turn's record, from its arrival to its end (see the module docstring)."""

    __slots__ = ("_state", "_value", "key", "ticket")

    def __init__(self, key: str, ticket: str, value: str) -> None:
        self.key = key  # the journal's hash
        self.ticket = ticket
        self._value = value
        self._state = _State.NEW

    @property
    def unsent(self) -> bool:
        """Neither written nor handed to a store that sent it."""
        return self._state is _State.NEW

    def recording(self) -> _Recording | None:
        """The record as a rider of the context read; None once sent."""
        return _Recording(self) if self._state is _State.NEW else None

    def removal(self) -> _Removal | None:
        """The removal as a rider of the append; None if there is nothing to remove."""
        return _Removal(self) if self._state is _State.RECORDED else None


class _Recording:
    """`bot.history.Rider`: HSET of the entry."""

    def __init__(self, entry: JournalEntry) -> None:
        self._entry = entry

    def command(self) -> tuple[str, ...]:
        entry = self._entry
        return ("HSET", entry.key, entry.ticket, entry._value)

    def landed(self, reply: object) -> None:
        entry = self._entry
        error = reply if isinstance(reply, BaseException) else None
        if isinstance(error, ResponseError):
            # refused by Redis: certainly not written, nothing to remove later
            entry._state = _State.CLEARED
        else:
            # a lost reply may hide a write that landed: the end removes it to be sure
            entry._state = _State.RECORDED
        if error is not None:
            # The answer itself reports the outage if it needs Redis too.
            log.warning("could not record pending turn %s: %r", entry.ticket, error)


class _Removal:
    """`bot.history.Rider`: HDEL of the entry."""

    def __init__(self, entry: JournalEntry) -> None:
        self._entry = entry

    def command(self) -> tuple[str, ...]:
        return ("HDEL", self._entry.key, self._entry.ticket)

    def landed(self, reply: object) -> None:
        if not isinstance(reply, BaseException):
            self._entry._state = _State.CLEARED
        # otherwise it stays recorded, and `TurnJournal.end` removes it on its own


class TurnJournal:
    """``entry`` and ``end`` around each answer (the history store carries the writes
    between them, or ``record`` sends one alone); ``start``/``stop`` with the dispatcher."""

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
        self._hash = keys.bot_scoped("pending")
        self._keys = keys
        self._alive_key = self._alive(self.instance)
        self._seq = itertools.count(1)
        # tickets whose removal failed (Redis away); retried on each heartbeat
        self._leftovers: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- around each answer ------------------------------------------------------------

    def entry(self, turn: Turn) -> JournalEntry:
        """The record of ``turn``, not sent yet."""
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
        return JournalEntry(self._hash, ticket, json.dumps(asdict(entry)))

    async def record(self, entry: JournalEntry) -> None:
        """Write ``entry`` now, in a round trip of its own; never raises."""
        recording = entry.recording()
        if recording is None:
            return
        error: BaseException | None = None
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.hset(entry.key, entry.ticket, entry._value)
        except (RedisError, TimeoutError) as exc:
            error = exc
        recording.landed(error)

    async def begin(self, turn: Turn) -> JournalEntry:
        """Record ``turn`` now, on its own."""
        entry = self.entry(turn)
        await self.record(entry)
        return entry

    async def end(self, entry: JournalEntry) -> None:
        """The turn ended in a way its user saw: forget it, unless that is done already."""
        if entry.removal() is None:
            return
        entry._state = _State.CLEARED  # from here, this call or the heartbeat's retries
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.hdel(entry.key, entry.ticket)
        except (RedisError, TimeoutError) as exc:
            log.warning("could not clear pending turn %s (will retry): %s", entry.ticket, exc)
            self._leftovers.add(entry.ticket)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Mark this process alive, then sweep and beat in the background."""
        if self._task is None:
            await self._beat()
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._stopping), name="pending-turns")

    async def stop(self) -> None:
        """Stop beating and say this process is gone, so its leftovers are reported soon."""
        task, self._task = self._task, None
        if task is not None:
            await halt(task, self._stopping)
        await self._clear_leftovers()
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                await self._redis.delete(self._alive_key)
        except (RedisError, TimeoutError) as exc:
            log.warning("could not remove the liveness mark: %s", exc)

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.sweep()
            except (RedisError, TimeoutError) as exc:
                log.warning("pending turns: sweep failed: %s", exc)
            except Exception:  # a bug here must not end the heartbeat
                log.exception("pending turns: sweep failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await stopping.wait()
            if not stopping.is_set():
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
        return self._keys.bot_scoped(f"instance:{instance}")


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
