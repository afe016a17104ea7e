"""Monotonic time that moves only when a test moves it, with timers on it.

For code that takes a clock and a ``call_later`` hook (e.g. `bot.ratelimit`): its tests
state "granted at t+1.0" exactly, instead of measuring wall time on a busy machine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
# Loop turns that let woken tasks run to their next await: granting is synchronous, so
# a woken task needs a turn or two, and its next request another.
_SETTLE_TURNS = 20


@dataclass(order=True)
class FakeTimer:
    when: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    _cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class FakeClock:
    """Call it for the time; ``call_later`` schedules on it; ``advance`` fires what is due."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[FakeTimer] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + max(0.0, delay), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def next_wake(self) -> float | None:
        """When the earliest live timer fires, or None."""
        while self._timers and self._timers[0].cancelled():
            heapq.heappop(self._timers)
        return self._timers[0].when if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move time forward, firing each due timer at its own moment, in order."""
        target = self.now + seconds
        while (wake := self.next_wake()) is not None and wake <= target:
            timer = heapq.heappop(self._timers)
            self.now = max(self.now, wake)
            timer.callback()
        self.now = target

    async def settle(self) -> None:
        """Let every task woken so far run until it waits again (no time passes)."""
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)

    async def run(self, awaitable: Awaitable[T], *, limit: float = 3600) -> T:
        """Await ``awaitable``, jumping time to the next timer whenever it is stuck."""
        task = asyncio.ensure_future(awaitable)
        start = self.now
        while True:
            await self.settle()
            if task.done():
                return task.result()
            wake = self.next_wake()
            if wake is None or wake - start > limit:
                task.cancel()
                raise AssertionError(f"stuck at t+{self.now - start:g}s with no timer due")
            self.advance(wake - self.now)
