"""Replicas split Telegram's bot-wide budget: presence marks on a real Redis, each
registry driving its own process's scheduler; a crashed replica is a real process
killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.cluster.replicas import ReplicaRegistry, bot_wide_share
from bot.storage.keys import Keys
from bot.streaming.ratelimit import TelegramRateLimiter

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 30.0
INTERVAL = 0.1  # a replica not heard from for 5 intervals (0.5 s) is gone


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Replica:
    """A registry on a Redis client of its own, sharing the budget of its scheduler."""

    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self.client = aioredis.Redis.from_url(redis_url)
        self.limiter = TelegramRateLimiter(global_rate=BUDGET, per_chat_interval=0)

        def share(replicas: int) -> None:
            self.limiter.set_global_rate(bot_wide_share(BUDGET, replicas))

        self.registry = ReplicaRegistry(
            self.client, Keys(key_prefix, 42), interval=INTERVAL, on_count=share
        )

    async def aclose(self) -> None:
        await self.registry.stop()
        await self.client.aclose()


@pytest.fixture
async def replicas(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[Callable[[], Replica]]:
    async with AsyncExitStack() as stack:

        def make() -> Replica:
            replica = Replica(redis_url, key_prefix)
            stack.push_async_callback(replica.aclose)
            return replica

        yield make


async def test_two_replicas_get_half_each_and_one_gets_all_back_when_the_other_leaves(
    replicas: Callable[[], Replica],
) -> None:
    a, b = replicas(), replicas()
    await a.registry.start()
    assert a.limiter.global_rate == BUDGET

    await b.registry.start()
    assert b.limiter.global_rate == BUDGET / 2, "the newcomer counts both at once"
    await until(lambda: a.limiter.global_rate == BUDGET / 2, "A to see B")

    await b.registry.stop()  # a clean shutdown leaves at once
    await until(lambda: a.limiter.global_rate == BUDGET, "A to take the whole budget back", 1)


async def test_a_crashed_replicas_share_returns_after_it_expires(
    replicas: Callable[[], Replica], redis_url: str, key_prefix: str
) -> None:
    a = replicas()
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.presence_process", redis_url, key_prefix, str(INTERVAL)],
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode().strip() == "present"
        await a.registry.start()
        assert a.limiter.global_rate == BUDGET / 2
    finally:
        proc.kill()
        await proc.wait()
    killed = time.monotonic()
    await until(lambda: a.limiter.global_rate == BUDGET, "the dead replica to expire")
    # not before its mark expired: 5 intervals after its last beat
    assert time.monotonic() - killed > 4 * INTERVAL - 0.05


async def test_the_share_of_many_replicas_has_a_floor_and_never_exceeds_the_budget() -> None:
    assert bot_wide_share(30, 0) == 30
    assert bot_wide_share(30, 3) == 10
    assert bot_wide_share(30, 7) == pytest.approx(30 / 7)
    assert bot_wide_share(30, 100) == 1.0
    assert bot_wide_share(0.5, 3) == 0.5


async def test_a_smaller_share_holds_back_requests_already_waiting() -> None:
    limiter = TelegramRateLimiter(global_rate=4, per_chat_interval=0)
    limiter.set_global_rate(2)
    assert limiter.try_acquire(1)
    assert limiter.try_acquire(2)
    assert not limiter.try_acquire(3), "two a second now"
    waiting = asyncio.create_task(limiter.acquire(3))
    await until(lambda: limiter.queued == 1, "a request waiting for the bot-wide budget")
    limiter.set_global_rate(4)  # the other replica left
    await asyncio.wait_for(waiting, 0.2)
