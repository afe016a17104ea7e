"""The event-loop lag monitor reports a loop that was kept busy, and stops cleanly."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.observability.loop_lag import LoopLagMonitor


def _hog_the_loop(seconds: float) -> None:
    """Blocking on purpose: what CPU work on the loop does to every timer."""
    time.sleep(seconds)


async def test_a_blocked_loop_is_reported_late() -> None:
    lags: list[float] = []
    first, late = asyncio.Event(), asyncio.Event()

    def observe(seconds: float) -> None:
        lags.append(seconds)
        first.set()
        if seconds >= 0.15:
            late.set()

    monitor = LoopLagMonitor(observe, interval=0.01)
    await monitor.start()
    await monitor.start()  # idempotent: still one task
    try:
        await asyncio.wait_for(first.wait(), 5)  # the monitor's next sleep is now pending
        _hog_the_loop(0.2)
        await asyncio.wait_for(late.wait(), 5)
    finally:
        await monitor.stop()
    # nothing is observed after stop(): no sampling task is left to observe anything
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "loop-lag"]
    await monitor.stop()  # idempotent


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopLagMonitor(lambda _: None, interval=0)
