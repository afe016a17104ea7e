"""Event-loop lag: how late the loop runs a timer, and so how late it runs everything else.

A loop kept busy by CPU work (or starved of the GIL by worker threads) delays every
answer at once; this shows it before anything times out. One task sleeps ``interval``
seconds at a time and reports how much longer each sleep took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["LoopLagMonitor"]

# Often enough to catch a stall of a few hundred ms, rarely enough to cost nothing.
DEFAULT_INTERVAL = 0.1


class LoopLagMonitor:
    """Calls ``observe(seconds late)`` after every sleep of ``interval`` seconds."""

    def __init__(
        self, observe: Callable[[float], None], *, interval: float = DEFAULT_INTERVAL
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._observe = observe
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self._interval)
            self._observe(max(0.0, loop.time() - started - self._interval))
