"""One answer at a time per conversation.

A second message that arrives while the bot is answering waits for its turn in arrival
order instead of being dropped or interleaving with the first in the history. A turn
answered in a task of its own takes its place in line before that task is created
(`TurnLocks.place`): turns started one after another keep their order even when their
tasks reach the lock in another one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Protocol

from bot.keys import ConversationKey


class TurnLocks(Protocol):
    """One answer at a time per conversation: `ConversationLocks` in one process,
    `bot.leases.RedisLeases` across replicas."""

    def hold(self, key: ConversationKey) -> AbstractAsyncContextManager[None]: ...

    def place(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Take a turn's place in `key`'s line now, without suspending, for a turn that
        will run in a task of its own. From now on the turn counts in `waiting(key)`.

        Run the turn inside ``async with`` the result, in that task: its `hold(key)`
        takes this place, and leaving gives the place up if no `hold(key)` took it."""
        ...

    def waiting(self, key: ConversationKey) -> int: ...

    def idle(self, key: ConversationKey) -> bool:
        """True only when `hold(key)` would be granted at once, without waiting for
        another turn (a turn that may wait is journalled before it does)."""
        ...


class _Place:
    __slots__ = ("key", "left", "owner", "taken", "woken")

    def __init__(self, owner: ConversationLocks, key: Hashable) -> None:
        self.owner = owner
        self.key = key
        self.taken = False  # a hold() took it
        self.left = False
        self.woken: asyncio.Future[None] | None = None


# The place taken for the turn running in this context (see `ConversationLocks.place`).
_placed: ContextVar[_Place | None] = ContextVar("glmbot_turn_place", default=None)


class ConversationLocks:
    """In-process FIFO locks keyed by conversation; idle keys cost nothing.

    Each conversation has a line of places; the first one holds the lock (or is about to).
    """

    def __init__(self) -> None:
        self._lines: dict[Hashable, deque[_Place]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        place = _placed.get()
        if place is None or place.owner is not self or place.key != key or place.taken:
            place = self._join(key)
        place.taken = True
        try:
            if self._lines[key][0] is not place:
                place.woken = asyncio.get_running_loop().create_future()
                await place.woken
            yield
        finally:
            self._leave(place)

    def place(self, key: Hashable) -> AbstractAsyncContextManager[None]:
        return self._entered(self._join(key))

    def waiting(self, key: Hashable) -> int:
        """Turns queued behind the running one."""
        line = self._lines.get(key)
        return 0 if line is None else len(line) - 1

    def idle(self, key: Hashable) -> bool:
        """`hold` takes the lock without suspending: no other turn holds or awaits it."""
        place = _placed.get()
        line = self._lines.get(key)
        if place is not None and place.owner is self and place.key == key and not place.taken:
            return line is not None and line[0] is place
        return line is None

    @asynccontextmanager
    async def _entered(self, place: _Place) -> AsyncIterator[None]:
        token = _placed.set(place)
        try:
            yield
        finally:
            _placed.reset(token)
            if not place.taken:
                self._leave(place)

    def _join(self, key: Hashable) -> _Place:
        place = _Place(self, key)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = deque()
        line.append(place)
        return place

    def _leave(self, place: _Place) -> None:
        if place.left:
            return
        place.left = True
        line = self._lines[place.key]
        first = line[0] is place
        line.remove(place)
        if not line:
            del self._lines[place.key]
        elif first:
            woken = line[0].woken
            # a place not waiting yet finds itself first when its hold() comes
            if woken is not None and not woken.done():
                woken.set_result(None)
