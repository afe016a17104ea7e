"""What `bot.cluster.leases` keeps about the turns of one conversation in this process."""

from __future__ import annotations

import asyncio
import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from redis.commands.core import AsyncScript

from bot.storage.keys import ConversationKey

__all__ = ["Conversation", "LeaseTurn", "Reservation", "run_script"]


async def run_script(script: AsyncScript, *, keys: list[str], args: list[str | int]) -> Any:
    """Call a script without losing a cancellation: redis-py can return a command's result
    to a task whose cancel() arrived meanwhile (redis/redis-py#2028), and a turn or renewal
    loop that missed its cancellation would never end."""
    task = asyncio.current_task()
    requested = task.cancelling() if task is not None else 0
    result = await script(keys=keys, args=args)
    if task is not None and task.cancelling() > requested:
        raise asyncio.CancelledError
    return result


@dataclass(eq=False, slots=True)
class LeaseTurn:
    token: str
    arrival: int
    # (ticket number, arrival): the order turns of one conversation run in; a turn without
    # a ticket (Redis failed) sorts after every ticketed one.
    order: tuple[float, int] = (math.inf, 0)
    ticketed: bool = False
    # True while this turn holds the Redis lease (False for a holder without Redis).
    leased: bool = False
    # Redis may hold a ticket or lease of this turn (False after the enter script failed).
    in_redis: bool = False
    # False for a reservation no turn has claimed yet (by `place` or `hold`); such a turn
    # keeps its place in line but is not counted as waiting.
    claimed: bool = True
    # False for a place no hold() has taken yet (see `_keep`), since `reserved_at`
    taken: bool = True
    reserved_at: float = 0.0
    # a ticket was asked for (a place taken by `place` asks when its hold() comes)
    asked: bool = False
    # released, or given up: nothing more to do with it
    done: bool = False


@dataclass(eq=False, slots=True)
class Reservation:
    """A place in a conversation's queue taken when an update arrived (see `reserve`)."""

    key: ConversationKey
    _turn: LeaseTurn
    # the RedisLeases that handed it out (compared by identity only)
    _owner: object


@dataclass(eq=False, slots=True)
class Conversation:
    users: int = 0
    holder: LeaseTurn | None = None
    waiters: list[LeaseTurn] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    keeper: asyncio.Task[None] | None = None

    def pulse(self) -> None:
        """Wake every local waiter to re-check its position."""
        self.changed.set()
        self.changed = asyncio.Event()

    def queue(self, turn: LeaseTurn) -> None:
        bisect.insort(self.waiters, turn, key=lambda t: t.order)

    def lost(self, reserved_before: float) -> list[LeaseTurn]:
        """Places no hold() took, reserved before that time (loop clock): their update
        failed before its handling began, or their task before it ran. They must not
        block the queue."""
        turns = [self.holder, *self.waiters]
        return [
            turn
            for turn in turns
            if turn is not None and not turn.taken and turn.reserved_at < reserved_before
        ]

    def first(self) -> LeaseTurn | None:
        return self.waiters[0] if self.waiters else None
