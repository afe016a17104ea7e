"""A lease holder in a process of its own, for tests that kill it to simulate a crash.

    python -m tests.lease_process REDIS_URL KEY_PREFIX CHAT_ID TTL

takes the conversation's lease (waiting in the queue if needed), prints "held", and holds
it until killed.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from bot.cluster.leases import RedisLeases
from bot.storage.keys import ConversationKey, Keys


async def _main(url: str, prefix: str, chat_id: int, ttl: float) -> None:
    client = aioredis.Redis.from_url(url)
    leases = RedisLeases(client, Keys(prefix, 42), ttl=ttl, poll_interval=0.02)
    print("waiting", flush=True)
    async with leases.hold(ConversationKey(chat_id)):
        print("held", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
