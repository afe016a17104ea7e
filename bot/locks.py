"""One answer at a time per conversation.

A second message that arrives while the bot is answering waits for its turn in arrival
order (asyncio.Lock wakes waiters first-in, first-out) instead of being dropped or
interleaving with the first in the history.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from bot.keys import ConversationKey


class TurnLocks(Protocol):
    """One answer at a time per conversation: `ConversationLocks` in one process,
    `bot.leases.RedisLeases` across replicas."""

    def hold(self, key: ConversationKey) -> AbstractAsyncContextManager[None]: ...

    def waiting(self, key: ConversationKey) -> int: ...

    def idle(self, key: ConversationKey) -> bool:
        """True only when `hold(key)` would be granted at once, without waiting for
        another turn (a turn that may wait is journalled before it does)."""
        ...


class _Slot:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class ConversationLocks:
    """In-process FIFO locks keyed by conversation; idle keys cost nothing."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[key]

    def waiting(self, key: Hashable) -> int:
        """Turns queued behind the running one."""
        slot = self._slots.get(key)
        return 0 if slot is None else max(0, slot.users - 1)

    def idle(self, key: Hashable) -> bool:
        """No turn holds or awaits the lock: `hold` takes it without suspending."""
        return key not in self._slots
