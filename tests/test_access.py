"""The access policy: who passes, and a refusal told once per interval (across replicas)."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.guards.access import AccessPolicy
from bot.storage.keys import Keys

ALICE, BOB, OWNER = 11, 12, 99
GROUP = -1001


def test_open_lets_everyone_in() -> None:
    policy = AccessPolicy(mode="open")
    assert policy.allows(BOB, GROUP)


def test_allowlist_users_chats_and_owners() -> None:
    policy = AccessPolicy(mode="allowlist", users=[ALICE], chats=[GROUP], owners=[OWNER])
    assert policy.allows(ALICE, ALICE), "a listed user in their private chat"
    assert policy.allows(ALICE, -2002), "a listed user in any group"
    assert policy.allows(BOB, GROUP), "anyone in a listed chat"
    assert policy.allows(OWNER, -2002), "owners everywhere"
    assert not policy.allows(BOB, BOB)
    assert not policy.allows(BOB, -2002)


async def test_refusal_told_once_across_replicas(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    replicas = [
        AccessPolicy(
            mode="allowlist", refusal_interval=3600, redis=redis_client, keys=Keys(key_prefix, 42)
        )
        for _ in range(2)
    ]
    assert await replicas[0].should_tell(BOB, BOB)
    assert not await replicas[0].should_tell(BOB, BOB)
    assert not await replicas[1].should_tell(BOB, BOB), "the other replica knows"
    assert await replicas[1].should_tell(BOB, GROUP), "told per chat"
    key = f"{key_prefix}:b42:{{c{BOB}}}:refused:{BOB}"
    assert 3590 < await redis_client.ttl(key) <= 3600


async def test_refusal_told_once_without_redis() -> None:
    policy = AccessPolicy(mode="allowlist")
    assert await policy.should_tell(BOB, BOB)
    assert not await policy.should_tell(BOB, BOB)
