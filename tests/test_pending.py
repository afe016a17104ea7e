"""The journal of answers in progress, against a real Redis: which lost answers get
reported, and how its writes ride on the history store's round trips."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis
from bot.conversation import Turn
from bot.pending import PendingTurn, TurnJournal
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.history import HistoryUnavailable, RedisHistoryStore, StoredMessage, riding
from bot.storage.keys import ConversationKey, Keys
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


async def test_redis_down_costs_the_answer_nothing(
    key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        j = journal(dead, key_prefix, Notices(), Clock(), "a")
        with caplog.at_level(logging.WARNING, logger="bot.pending"):
            entry = await j.begin(turn(5))  # never raises
            assert not entry.unsent
            await j.end(entry)  # kept to retry on the next heartbeat, never raises
        assert "will retry" in caplog.text, "the record may have landed: its removal is tried"
        await j.stop()
    finally:
        await dead.aclose()


def unreachable_history(prefix: str) -> tuple[aioredis.Redis, RedisHistoryStore]:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", retry=Retry(NoBackoff(), 0))
    return client, RedisHistoryStore(client, Keys(prefix, BOT_ID))


async def test_the_record_and_its_removal_ride_on_the_history_store(
    redis_client: aioredis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The journal's own client is dead: had it sent anything itself, it would have failed
    # and said so. The store's carries both writes.
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    store = RedisHistoryStore(redis_client, Keys(key_prefix, BOT_ID))
    key = ConversationKey(5)
    try:
        j = journal(dead, key_prefix, Notices(), Clock(), "a")
        with caplog.at_level(logging.WARNING, logger="bot.pending"):
            entry = j.entry(turn(5))
            assert entry.unsent
            assert await pending(redis_client, key_prefix) == {}, "not sent on its own"
            await store.load_context(key, 1000, riders=riding(entry.recording()))
            assert not entry.unsent
            (recorded,) = (await pending(redis_client, key_prefix)).values()
            assert json.loads(recorded)["chat_id"] == 5
            assert entry.recording() is None, "recorded once"
            messages = [
                StoredMessage.from_text("user", "q"),
                StoredMessage.from_text("assistant", "a"),
            ]
            await store.append(key, messages, riders=riding(entry.removal()))
            assert await pending(redis_client, key_prefix) == {}
            assert entry.removal() is None, "nothing left to remove"
            await j.end(entry)
        assert caplog.records == []
    finally:
        await dead.aclose()


async def test_a_turn_whose_append_failed_still_leaves_the_journal(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Its user saw the answer: a notice after a restart would be wrong."""
    j = journal(redis_client, key_prefix, Notices(), Clock(), "a")
    messages = [StoredMessage.from_text("user", "q"), StoredMessage.from_text("assistant", "a")]
    # the removal rode along though the script failed (the list key holds a string)
    store = RedisHistoryStore(redis_client, Keys(key_prefix, BOT_ID))
    await redis_client.set(Keys(key_prefix, BOT_ID).messages(ConversationKey(6)), "not a list")
    entry = await j.begin(turn(6))
    with pytest.raises(HistoryUnavailable):
        await store.append(ConversationKey(6), messages, riders=riding(entry.removal()))
    assert await pending(redis_client, key_prefix) == {}
    # the whole round trip failed: the end removes it on its own
    client, unreachable = unreachable_history(key_prefix)
    try:
        entry = await j.begin(turn(7))
        with pytest.raises(HistoryUnavailable):
            await unreachable.append(ConversationKey(7), messages, riders=riding(entry.removal()))
        assert len(await pending(redis_client, key_prefix)) == 1
        await j.end(entry)
        assert await pending(redis_client, key_prefix) == {}
    finally:
        await client.aclose()


async def test_a_record_refused_by_redis_leaves_nothing_to_remove(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    journal_key = Keys(key_prefix, BOT_ID).bot_scoped("pending")
    await redis_client.set(journal_key, "not a hash")
    store = RedisHistoryStore(redis_client, Keys(key_prefix, BOT_ID))
    entry = journal(redis_client, key_prefix, Notices(), Clock(), "a").entry(turn(5))
    await store.load_context(ConversationKey(5), 1000, riders=riding(entry.recording()))
    assert not entry.unsent
    assert entry.removal() is None
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
        await j.begin(turn(5))
        async with asyncio.timeout(5):
            await j.stop()
        assert not await redis_client.exists(Keys(key_prefix, BOT_ID).bot_scoped(f"instance:i{n}"))
