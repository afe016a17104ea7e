"""Background loops (journal heartbeat, replica presence...): start, run a step every
interval, report a failing step, stop without losing the task to a swallowed cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic", "halt"]

log = logging.getLogger(__name__)

# Long enough for a loop step that talks to Redis (bounded by its own timeout), or a
# journal sweep telling users of lost answers, to end.
_STOP_TIMEOUT = 5.0


async def halt(
    task: asyncio.Task[None], stopping: asyncio.Event, timeout: float = _STOP_TIMEOUT
) -> None:
    """Ask ``task`` to end (``stopping``), and cancel it only if it has not within
    ``timeout`` seconds; returns within about twice that.

    Asked first, not cancelled: on Python 3.11 a cancellation that lands as a Redis reply
    completes is swallowed by ``asyncio.wait_for`` inside redis-py (redis/redis-py#2028),
    and a loop cancelled then would go on for ever.
    """
    stopping.set()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=timeout)


class Periodic:
    """Runs ``step`` every ``interval`` seconds in a task of its own, between `start` and
    `stop`; the first step runs at once, or after one interval with ``wait_first``. A step
    that raises is logged and the loop goes on."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[None]],
        interval: float,
        *,
        wait_first: bool = False,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._name = name
        self._step = step
        self._interval = interval
        self._wait_first = wait_first
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._stopping), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await halt(task, self._stopping)

    async def _run(self, stopping: asyncio.Event) -> None:
        if self._wait_first:
            await self._pause(stopping)
        while not stopping.is_set():
            try:
                await self._step()
            except Exception:  # a bug in one step must not end the loop
                log.exception("%s: a step failed", self._name)
            await self._pause(stopping)

    async def _pause(self, stopping: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval):
                await stopping.wait()
