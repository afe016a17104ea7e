"""The journal of answers in progress, against a real Redis: which lost answers get reported."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot.conversation import Turn
from bot.keys import ConversationKey, Keys
from bot.pending import PendingTurn, TurnJournal

BOT_ID = 42


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Notices:
    def __init__(self) -> None:
        self.sent: list[PendingTurn] = []

    async def __call__(self, turn: PendingTurn) -> None:
        self.sent.append(turn)


def journal(
    client: aioredis.Redis, prefix: str, notices: Notices, clock: Clock, instance: str
) -> TurnJournal:
    return TurnJournal(
        client,
        Keys(prefix, BOT_ID),
        notices,
        heartbeat=60,
        grace=30,
        instance=instance,
        clock=clock,
    )


def turn(chat_id: int, text: str = "What is a monad?", thread: int | None = None) -> Turn:
    return Turn(ConversationKey(chat_id, thread), text, user_id=chat_id, language="zh-hans")


async def pending(client: aioredis.Redis, prefix: str) -> dict[bytes, bytes]:
    entries: dict[bytes, bytes] = await client.hgetall(Keys(prefix, BOT_ID).bot_scoped("pending"))
    return entries


async def test_a_finished_turn_leaves_nothing(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    notices, clock = Notices(), Clock()
    j = journal(redis_client, key_prefix, notices, clock, "a")
    ticket = await j.begin(turn(5))
    assert ticket is not None
    assert len(await pending(redis_client, key_prefix)) == 1
    await j.end(ticket)
    assert await pending(redis_client, key_prefix) == {}


async def test_turns_of_a_dead_process_are_reported_once(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    notices, clock = Notices(), Clock()
    dead = journal(redis_client, key_prefix, notices, clock, "dead")
    await dead.begin(turn(5, "x" * 500, thread=7))
    await dead.begin(turn(6))
    survivors = [journal(redis_client, key_prefix, notices, clock, f"r{i}") for i in range(3)]

    assert await survivors[0].sweep() == 0, "too recent: it may still be answered"
    clock.now += 31
    reported = await asyncio.gather(*(s.sweep() for s in survivors))
    assert sum(reported) == 2
    assert sorted(n.chat_id for n in notices.sent) == [5, 6]
    lost = next(n for n in notices.sent if n.chat_id == 5)
    assert (lost.thread_id, lost.language, lost.owner) == (7, "zh-hans", "dead")
    assert len(lost.preview) <= 80
    assert lost.preview.endswith("…")
    assert await pending(redis_client, key_prefix) == {}


async def test_turns_of_a_live_process_or_our_own_are_left_alone(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    notices, clock = Notices(), Clock()
    # live sweeps in the background: on a clock of its own, nothing ever looks old to it
    live = journal(redis_client, key_prefix, notices, Clock(), "live")
    other = journal(redis_client, key_prefix, notices, clock, "other")
    await live.start()
    try:
        await live.begin(turn(5))
        await other.begin(turn(6))
        clock.now += 600
        assert await other.sweep() == 0, "live is alive, and other never reports its own"
        assert notices.sent == []
    finally:
        await live.stop()
    assert await other.sweep() == 1, "once stopped, its unfinished turns are reported"
    assert [n.chat_id for n in notices.sent] == [5]
    assert len(await pending(redis_client, key_prefix)) == 1, "other's own turn stays"


async def test_malformed_entries_are_dropped(redis_client: aioredis.Redis, key_prefix: str) -> None:
    notices, clock = Notices(), Clock()
    await redis_client.hset(Keys(key_prefix, BOT_ID).bot_scoped("pending"), "junk:1", "{not json")
    assert await journal(redis_client, key_prefix, notices, clock, "a").sweep() == 0
    assert await pending(redis_client, key_prefix) == {}


async def test_redis_down_costs_the_answer_nothing(key_prefix: str) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        j = journal(dead, key_prefix, Notices(), Clock(), "a")
        assert await j.begin(turn(5)) is None
        await j.end(None)
        await j.end("a:1")  # kept to retry on the next heartbeat, never raises
        await j.stop()
    finally:
        await dead.aclose()


async def test_stop_ends_the_heartbeat_whenever_it_comes(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Stopped in the middle of Redis commands, where a cancellation can get lost."""
    for n in range(20):
        j = TurnJournal(
            redis_client,
            Keys(key_prefix, BOT_ID),
            Notices(),
            heartbeat=60,
            grace=30,
            instance=f"i{n}",
        )
        await j.start()
        await j.begin(turn(5))
        async with asyncio.timeout(5):
            await j.stop()
        assert not await redis_client.exists(Keys(key_prefix, BOT_ID).bot_scoped(f"instance:i{n}"))
