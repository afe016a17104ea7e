"""Update dedup and owner alerts against a real Redis, and their fallbacks without one."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bot.guards.alerts import OwnerAlerts
from bot.guards.dedup import UpdateDedup
from bot.history import HistoryUnavailable, MemoryHistoryStore, RedisHistoryStore, riding
from bot.storage.keys import ConversationKey, Keys

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


async def test_a_claim_rides_on_the_context_read_or_is_sent_alone(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix, BOT_ID)
    one = UpdateDedup(redis_client, keys, ttl=60)
    two = UpdateDedup(redis_client, keys, ttl=60)  # another replica
    store = RedisHistoryStore(redis_client, keys)
    chat = ConversationKey(1)

    first, repeat = one.claim(11), two.claim(11)
    assert first is not None
    assert repeat is not None
    await store.load_context(chat, 100, riders=riding(first.rider()))
    assert first.settled
    assert first.rider() is None, "sent once"
    assert await first.settle()
    await store.load_context(chat, 100, riders=riding(repeat.rider()))
    assert not await repeat.settle(), "the other replica's read learnt it came second"
    assert one.claim(11) is None, "this process remembers its own claims"

    # a store without Redis carries nothing: settling sends the claim on its own
    alone = one.claim(12)
    assert alone is not None
    await MemoryHistoryStore().load_context(chat, 100, riders=riding(alone.rider()))
    assert not alone.settled
    assert await alone.settle()
    assert await redis_client.ttl(keys.bot_scoped("update:12")) > 0


async def test_a_claim_whose_read_fails_counts_as_first(key_prefix: str) -> None:
    dead = aioredis.Redis.from_url(DEAD_REDIS)
    try:
        keys = Keys(key_prefix, BOT_ID)
        claim = UpdateDedup(dead, keys, ttl=60).claim(5)
        assert claim is not None
        with pytest.raises(HistoryUnavailable):
            await RedisHistoryStore(dead, keys).load_context(
                ConversationKey(1), 100, riders=riding(claim.rider())
            )
        assert claim.settled
        assert await claim.settle(), "availability over strictness"
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
    sent = await asyncio.gather(*(r.alert("no_balance", "top up") for r in replicas * 2))
    assert sent.count(True) == 1
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
    assert not await alerts.alert("auth", "x")
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
        assert not await alerts.alert("auth", "x")
    finally:
        await dead.aclose()
    assert inbox.sent == [(1, "x")]
