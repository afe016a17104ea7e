"""Stopping the bot's long-running Redis loops (journal heartbeat, replica presence,
stop-signal subscriber) without losing them to a swallowed cancellation."""

from __future__ import annotations

import asyncio

__all__ = ["halt"]

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
