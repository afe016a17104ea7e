"""What one answer asks of Redis, counted on a Redis of the test's own (issue 6).

Round trips are counted by the server: each reply it writes to a client ends one (a
pipeline's replies go out in one write), so INFO's ``total_writes_processed`` after
CONFIG RESETSTAT is the round trips of every client since, the probe's own RESETSTAT
reply included. Commands are INFO commandstats, those run inside scripts included.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.storage.keys import Keys
from tests.conftest import RedisProcess
from tests.fakes.glm import Reply
from tests.harness import BotHarness, eventually, running_bot

# Each answer, one command or script call each, nothing riding on another:
#   1 the update's dedup claim (SET NX, `handlers.dedup`)
#   2 the journal's record of the turn (HSET, when it is queued)
#   3 the context read: persona, preferences and history tail (one script)
#   4 the append of question and answer (one script)
#   5 the journal's removal of the turn (HDEL, when it is over)
#   6 the usage accounting (one script)
# (3 while the dedup claim and the journal's writes rode on the context read and the
# append; the core reshape traded those round trips for simpler code.)
ROUND_TRIPS_PER_ANSWER = 6
SCRIPT_CALLS_PER_ANSWER = 3  # context read, append, accounting
# 34 in a conversation with history (usage is kept per user, chat, model, user and model,
# and in total), and up to 6 more for a new user's first answer, whose counters get their
# TTLs.
COMMANDS_PER_ANSWER = 40
# Sent when a pooled connection is opened or checked, not by an answer itself.
CONNECTION_SETUP = ("hello", "client|setinfo", "select", "auth", "ping")
ANSWER = "Hello from GLM!"


async def answer(h: BotHarness, user: int) -> None:
    answered = len(h.texts(user))
    h.tg.private_text(user, f"Question from {user}")
    await h.wait_for_messages(user, answered + 1)
    assert h.last_text(user) == ANSWER
    # until the handler is done, accounting included
    assert await h.app.turns.drain(10) == 0


async def test_a_private_answer_costs_six_round_trips(
    own_redis: RedisProcess, key_prefix: str
) -> None:
    probe = aioredis.Redis.from_url(own_redis.url, single_connection_client=True)
    try:
        async with running_bot(
            own_redis.url,
            key_prefix,
            reply=Reply(text=ANSWER),
            # no liveness mark or sweep while counting
            reliability={"heartbeat": 3600},
        ) as h:
            pending = Keys(key_prefix, h.tg.bot_id).bot_scoped("pending")
            h.glm.script(Reply(tokens=["Hello ", "from ", "GLM!"], token_interval=0.3))
            # The first answer opens the pool's connections and loads the scripts. While
            # it streams, its turn is in the journal, and its update was claimed.
            first = h.tg.private_text(500, "Question from 500")
            await eventually(lambda: probe.hlen(pending), 1, what="the turn journalled")
            await h.tg.wait_for(lambda: h.last_text(500) == ANSWER, what="the first answer")
            assert await h.app.turns.drain(10) == 0
            assert await probe.hlen(pending) == 0, "and removed once it is over"
            claim = Keys(key_prefix, h.tg.bot_id).bot_scoped(f"update:{first}")
            assert await probe.exists(claim), "the update was claimed in Redis"

            await probe.config_resetstat()
            users = (501, 502, 501)  # a new conversation, another, one with history
            for user in users:
                await answer(h, user)
            stats = await probe.info("stats")
            commandstats = await probe.info("commandstats")
            assert await probe.hlen(pending) == 0
    finally:
        await probe.aclose()

    calls = {
        name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in commandstats.items()
    }
    for own in ("config|resetstat", "info"):
        calls.pop(own, None)
    setup = sum(calls.get(name, 0) for name in CONNECTION_SETUP)
    round_trips = int(stats["total_writes_processed"]) - 1 - setup  # less RESETSTAT's reply
    answers = len(users)
    # exactly: not more (a new round trip is a decision), not fewer (every answer was
    # claimed, journalled, read, stored, taken off the journal and charged)
    assert round_trips == ROUND_TRIPS_PER_ANSWER * answers, calls
    assert calls["evalsha"] == SCRIPT_CALLS_PER_ANSWER * answers, calls
    assert calls["hdel"] == answers, "each turn left the journal"
    # the dedup claim, and the append's idempotency marker inside its script
    assert calls["set"] == 2 * answers, calls
    assert sum(calls.values()) - setup <= COMMANDS_PER_ANSWER * answers, calls
