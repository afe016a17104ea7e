"""The update queue behind getUpdates: offsets, limits, allowed_updates and long polling."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from typing import Any

# What Telegram sends when allowed_updates was never set or set to an empty list.
DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_type(update: dict[str, Any]) -> str:
    for key in update:
        if key != "update_id":
            return key
    return ""


class UpdateQueue:
    """Pending updates in update_id order; confirmed ones are dropped as Telegram does."""

    def __init__(self) -> None:
        self._items: deque[dict[str, Any]] = deque()
        # Like Telegram's: an arbitrary large start, so a second fake server in one test
        # (a "restart") does not reuse the ids the bot has already seen and deduplicates.
        self._next_id = random.randrange(1, 2**31)
        self._event: asyncio.Event | None = None
        self.allowed: frozenset[str] | None = None
        self._unfiltered: set[int] = set()  # ids delivered whatever allowed_updates says
        self.closed = False
        self.pushed = 0
        self.delivered = 0
        self.dropped = 0
        self.waiting = 0  # long polls currently parked

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        # the id counter keeps going: a running poller's offset must not swallow new updates
        self._items.clear()
        self.allowed = None

    def assign_id(self, update: dict[str, Any]) -> int:
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            update_id = self._next_id
            update["update_id"] = update_id
        self._next_id = max(self._next_id, update_id + 1)
        return update_id

    def push(self, update: dict[str, Any], *, filtered: bool = True) -> int:
        update_id = self.assign_id(update)
        if not filtered:
            self._unfiltered.add(update_id)
        self._items.append(update)
        self.pushed += 1
        self.wake()
        return update_id

    def wake(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    def set_allowed(self, allowed: Any) -> None:
        """Remember allowed_updates like Telegram: an empty list restores the default set."""
        if isinstance(allowed, list):
            self.allowed = frozenset(str(kind) for kind in allowed) or None

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        if update["update_id"] in self._unfiltered:
            return True
        kind = update_type(update)
        if self.allowed is None:
            return kind not in DEFAULT_EXCLUDED
        return kind in self.allowed

    def confirm(self, offset: int) -> None:
        items = self._items
        if offset > 0:
            while items and items[0]["update_id"] < offset:
                items.popleft()
        elif offset < 0:
            while len(items) > -offset:
                items.popleft()

    def take(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` deliverable updates; they stay queued until an offset confirms them."""
        items = self._items
        # unwanted updates at the head are dropped; later ones fall to the next confirm
        while items and not self._is_allowed(items[0]):
            items.popleft()
            self.dropped += 1
        batch: list[dict[str, Any]] = []
        for update in items:
            if self._is_allowed(update):
                batch.append(update)
                if len(batch) >= limit:
                    break
        self.delivered += len(batch)
        return batch

    async def poll(self, offset: int, limit: int, wait: float) -> list[dict[str, Any]]:
        """getUpdates: answer at once when something is pending, else wait up to ``wait`` s."""
        self.confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if self.closed:
                return []
            batch = self.take(limit)
            if batch:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if self._event is None:
                self._event = asyncio.Event()
            self.waiting += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), remaining)
            finally:
                self.waiting -= 1
