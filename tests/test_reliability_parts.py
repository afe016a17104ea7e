"""Update dedup and owner alerts against a real Redis, and their fallbacks without one."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot.guards.alerts import OwnerAlerts
from bot.guards.dedup import UpdateDedup
from bot.storage.keys import Keys

BOT_ID = 42
# Nothing listens there: every command fails at once with a connection error.
DEAD_REDIS = "redis://127.0.0.1:1/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_dedup_admits_each_update_once_across_replicas(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix, BOT_ID)
    one = UpdateDedup(redis_client, keys, ttl=60)
    two = UpdateDedup(redis_client, keys, ttl=60)  # another replica: no shared memory
    results = await asyncio.gather(*(d.first_time(7) for d in (one, two, one, two)))
    assert sorted(results) == [False, False, False, True]
    assert await one.first_time(8)
    assert await redis_client.ttl(keys.bot_scoped("update:7")) > 0, "claims expire"


async def test_dedup_in_memory_expires_after_the_ttl(key_prefix: str) -> None:
    clock = Clock()
    dedup = UpdateDedup(None, Keys(key_prefix, BOT_ID), ttl=60, clock=clock)
    assert await dedup.first_time(1)
    assert not await dedup.first_time(1)
    clock.now += 61
    assert await dedup.first_time(1)


async def test_dedup_without_redis_processes_and_still_drops_local_repeats(
    key_prefix: str,
) -> None:
    dead = aioredis.Redis.from_url(DEAD_REDIS)
    try:
        dedup = UpdateDedup(dead, Keys(key_prefix, BOT_ID), ttl=60)
        assert await dedup.first_time(5), "availability over strictness"
        assert not await dedup.first_time(5)
    finally:
        await dead.aclose()


class Inbox:
    def __init__(self, failing: set[int] | None = None) -> None:
        self.sent: list[tuple[int, str]] = []
        self.failing = failing or set()

    async def send(self, owner: int, text: str) -> None:
        if owner in self.failing:
            raise RuntimeError("Forbidden: bot can't initiate conversation with a user")
        self.sent.append((owner, text))


async def test_alert_once_per_cause_across_replicas(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix, BOT_ID)
    inbox = Inbox()
    replicas = [
        OwnerAlerts(inbox.send, [1, 2, 2], redis=redis_client, keys=keys, interval=3600)
        for _ in range(2)
    ]
    told = await asyncio.gather(*(r.alert("no_balance", "top up") for r in replicas * 2))
    assert all(told), "the owners were told: by this call, or by one within the interval"
    assert sorted(inbox.sent) == [(1, "top up"), (2, "top up")], "each owner once"

    assert await replicas[1].alert("auth", "bad key"), "another cause is alerted on its own"
    assert len(inbox.sent) == 4
    ttl = await redis_client.ttl(keys.bot_scoped("alert:no_balance"))
    assert 3500 < ttl <= 3600


async def test_alert_again_after_the_interval_without_redis(key_prefix: str) -> None:
    clock, inbox = Clock(), Inbox()
    alerts = OwnerAlerts(
        inbox.send, [1], redis=None, keys=Keys(key_prefix, BOT_ID), interval=3600, clock=clock
    )
    assert await alerts.alert("auth", "x")
    assert await alerts.alert("auth", "x"), "told within the interval"
    assert len(inbox.sent) == 1, "and not sent again"
    clock.now += 3601
    assert await alerts.alert("auth", "x")
    assert len(inbox.sent) == 2


async def test_alert_nobody_received_is_retried_next_time(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    inbox = Inbox(failing={1})
    alerts = OwnerAlerts(inbox.send, [1], redis=redis_client, keys=Keys(key_prefix, BOT_ID))
    assert not await alerts.alert("auth", "x")
    inbox.failing.clear()
    assert await alerts.alert("auth", "x")
    assert inbox.sent == [(1, "x")]


async def test_alert_without_owners_or_with_redis_down(key_prefix: str) -> None:
    inbox = Inbox()
    keys = Keys(key_prefix, BOT_ID)
    assert not await OwnerAlerts(inbox.send, [], redis=None, keys=keys).alert("auth", "x")
    dead = aioredis.Redis.from_url(DEAD_REDIS)
    try:
        alerts = OwnerAlerts(inbox.send, [1], redis=dead, keys=keys)
        assert await alerts.alert("auth", "x"), "sent anyway, deduplicated in this process"
        assert await alerts.alert("auth", "x"), "told within the interval"
    finally:
        await dead.aclose()
    assert inbox.sent == [(1, "x")]
