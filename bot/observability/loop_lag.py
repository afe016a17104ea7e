"""Event-loop lag: how late the loop runs a timer, and so how late it runs everything else.

A loop kept busy by CPU work (or starved of the GIL by worker threads) delays every
answer at once; this shows it before anything times out. One background loop
waits ``interval`` seconds at a time and reports how much longer each wait took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.storage.background import Periodic

__all__ = ["LoopLagMonitor"]

# Often enough to catch a stall of a few hundred ms, rarely enough to cost nothing.
DEFAULT_INTERVAL = 0.1


class LoopLagMonitor:
    """Calls ``observe(seconds late)`` after every wait of ``interval`` seconds."""

    def __init__(
        self, observe: Callable[[float], None], *, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self._observe = observe
        self._interval = interval
        self._loop = Periodic("loop-lag", self._sample, interval)
        self._last: float | None = None

    async def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if not self._loop.running:
            self._last = None
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _sample(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last is not None:
            self._observe(max(0.0, now - self._last - self._interval))
        self._last = now
