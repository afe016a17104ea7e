"""The journal of answers in progress (`bot.turns.journal`), against a real Redis: which
lost answers get reported, and that a turn is on record from its arrival to its end."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from bot.messages import TextPart
from bot.storage.keys import ConversationKey, Keys
from bot.turns.journal import PendingTurn, TurnJournal
from bot.turns.types import Turn
from tests.conftest import RedisProcess
from tests.fakes.glm import Reply
from tests.harness import eventually, running_bot

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
    return Turn(
        ConversationKey(chat_id, thread), (TextPart(text),), user_id=chat_id, language="zh-hans"
    )


async def pending(client: aioredis.Redis, prefix: str) -> dict[bytes, bytes]:
    entries: dict[bytes, bytes] = await client.hgetall(Keys(prefix, BOT_ID).bot_scoped("pending"))
    return entries


async def test_a_finished_turn_leaves_nothing(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    notices, clock = Notices(), Clock()
    j = journal(redis_client, key_prefix, notices, clock, "a")
    ticket = await j.record(turn(5, thread=9))
    assert ticket is not None
    (field, recorded) = (await pending(redis_client, key_prefix)).popitem()
    assert field.decode() == ticket
    assert json.loads(recorded) == {
        "chat_id": 5,
        "thread_id": 9,
        "user_id": 5,
        "language": "zh-hans",
        "preview": "What is a monad?",
        "owner": "a",
        "at": clock.now,
    }
    await j.end(ticket)
    assert await pending(redis_client, key_prefix) == {}


async def test_turns_of_a_dead_process_are_reported_once(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    notices, clock = Notices(), Clock()
    dead = journal(redis_client, key_prefix, notices, clock, "dead")
    await dead.record(turn(5, "x" * 500, thread=7))
    await dead.record(turn(6))
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
        await live.record(turn(5))
        await other.record(turn(6))
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


async def test_redis_down_costs_the_answer_nothing(
    key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        j = journal(dead, key_prefix, Notices(), Clock(), "a")
        with caplog.at_level(logging.WARNING, logger="bot.turns.journal"):
            ticket = await j.record(turn(5))  # never raises
            # the reply was lost, not refused: the record may have landed
            assert ticket is not None
            await j.end(ticket)  # kept to retry on the next heartbeat, never raises
        assert "will retry" in caplog.text, "the record may have landed: its removal is tried"
        await j.stop()
    finally:
        await dead.aclose()


async def test_a_removal_that_failed_is_retried_on_the_heartbeat(
    key_prefix: str, own_redis: RedisProcess
) -> None:
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        keys = Keys(key_prefix, BOT_ID)
        j = TurnJournal(client, keys, Notices(), heartbeat=0.05, grace=30, instance="a")
        ticket = await j.record(turn(5))
        own_redis.stop()
        await j.end(ticket)  # Redis away: kept
        own_redis.start()  # with AOF: the record is still there
        assert await client.hlen(keys.bot_scoped("pending")) == 1
        await j.start()
        try:
            await eventually(
                lambda: client.hlen(keys.bot_scoped("pending")), 0, what="the retried removal"
            )
        finally:
            await j.stop()
    finally:
        await client.aclose()


async def test_a_record_refused_by_redis_leaves_nothing_to_remove(
    redis_client: aioredis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    journal_key = Keys(key_prefix, BOT_ID).bot_scoped("pending")
    await redis_client.set(journal_key, "not a hash")
    j = journal(redis_client, key_prefix, Notices(), Clock(), "a")
    with caplog.at_level(logging.WARNING, logger="bot.turns.journal"):
        assert await j.record(turn(5)) is None, "certainly not written"
        await j.end(None)
    assert "will retry" not in caplog.text
    assert await redis_client.get(journal_key) == b"not a hash"


async def test_a_queued_turn_is_journalled_on_arrival(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis
) -> None:
    """Not when its context read comes, after the answer it waits behind."""
    slow = Reply(tokens=[f"w{i} " for i in range(30)], token_interval=0.05)
    async with running_bot(redis_url, key_prefix, reply=slow) as h:
        journal_key = Keys(key_prefix, h.tg.bot_id).bot_scoped("pending")
        h.tg.private_text(5, "first")
        await eventually(lambda: redis_client.hlen(journal_key), 1, what="the first turn")
        await h.glm.wait_for(lambda: len(h.glm.requests) == 1, what="the first answer")
        h.tg.private_text(5, "second")
        await eventually(lambda: redis_client.hlen(journal_key), 2, what="the queued turn")
        assert len(h.glm.requests) == 1, "the second was still waiting for its turn"
        await h.wait_for_messages(5, 2)
        assert h.app.turns.waiting(ConversationKey(5)) == 0
        assert await h.app.turns.drain(10) == 0
        assert await redis_client.hlen(journal_key) == 0


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
        await j.record(turn(5))
        async with asyncio.timeout(5):
            await j.stop()
        assert not await redis_client.exists(Keys(key_prefix, BOT_ID).bot_scoped(f"instance:i{n}"))
