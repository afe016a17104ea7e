"""A replica's presence mark in a process of its own, for tests that kill it to simulate
a crash.

    python -m tests.presence_process REDIS_URL KEY_PREFIX INTERVAL

marks itself present (`bot.cluster.replicas.ReplicaRegistry`), prints "present", and beats until
killed.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from bot.cluster.replicas import ReplicaRegistry
from bot.storage.keys import Keys


async def _main(url: str, prefix: str, interval: float) -> None:
    client = aioredis.Redis.from_url(url)
    registry = ReplicaRegistry(client, Keys(prefix, 42), interval=interval, on_count=lambda _: None)
    await registry.start()
    print("present", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
