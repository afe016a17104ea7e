"""Failures end to end: GLM errors, cut and stalled streams, the circuit breaker, owner
alerts, redelivered updates, a Redis outage during commands, and a graceful shutdown.

(The Redis outage between two questions and GLM 500s with a retry bound are in
test_e2e_private.py.)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from bot.storage.keys import ConversationKey, Keys
from tests.conftest import RedisProcess
from tests.fakes.glm import Reply
from tests.harness import BotHarness, running_bot

USER, OTHER, OWNER = 1001, 1002, 7777
GROUP = -100777


async def stored(h: BotHarness, chat_id: int) -> int:
    """Messages stored in the conversation's history."""
    return await h.app.store.length(ConversationKey(chat_id))


async def answered(h: BotHarness, chat_id: int, text: str, what: str = "answer") -> None:
    await h.tg.wait_for(lambda: h.last_text(chat_id) == text, what=what)
    await h.wait_idle()


async def test_rate_limit_then_success_is_one_answer(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(Reply(status=429, code="1302", message="rate limit"), Reply(text="Fine."))
        h.tg.private_text(USER, "hello")
        await answered(h, USER, "Fine.")
        assert len(h.glm.requests) == 2, "retried once"
        assert h.texts(USER) == ["Fine."], "one answer, no error shown"
        assert await stored(h, USER) == 2


async def test_server_errors_leave_the_history_unchanged(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, llm={"retry_attempts": 3}) as h:
        h.glm.script(Reply(text="One."))
        h.tg.private_text(USER, "first")
        await answered(h, USER, "One.")

        h.glm.script(*[Reply(status=500, code="500", message="internal")] * 3, Reply(text="Two."))
        h.tg.private_text(USER, "second")
        await h.tg.wait_for(lambda: "did not answer" in h.last_text(USER), what="error notice")
        await h.wait_idle()
        assert len(h.glm.requests) == 4, "three attempts, then the user is told"
        assert await stored(h, USER) == 2

        h.tg.private_text(USER, "third")
        await answered(h, USER, "Two.")
        assert [m["content"] for m in h.glm_messages()] == ["first", "One.", "third"]


@pytest.mark.parametrize("fault", ["disconnect", "stall"])
async def test_a_cut_stream_keeps_the_partial_text_marked(
    redis_url: str, key_prefix: str, fault: str
) -> None:
    broken = Reply(tokens=["The ", "first ", "half"], token_interval=0.05)
    setattr(broken, f"{fault}_after", 2)
    stall_timeout = 0.5
    async with running_bot(redis_url, key_prefix, llm={"stall_timeout": stall_timeout}) as h:
        h.glm.script(broken, Reply(text="Whole."))
        h.tg.private_text(USER, "tell me")
        await h.glm.wait_for(lambda: len(h.glm.requests) == 1, what="request")
        started = time.monotonic()
        await h.tg.wait_for(lambda: "interrupted" in h.last_text(USER), what="interrupted mark")
        await h.wait_idle()
        elapsed = time.monotonic() - started
        (message,) = h.tg.chat_messages(USER)
        assert message.text.startswith("The first"), "the partial answer is kept"
        assert len(h.glm.requests) == 1, "text was shown: no retry"
        if fault == "stall":
            assert stall_timeout <= elapsed < stall_timeout + 3, "cut after the stall timeout"

        h.tg.private_text(USER, "again")
        await answered(h, USER, "Whole.")
        assert h.glm_messages() == [{"role": "user", "content": "again"}], (
            "the cut turn was not stored"
        )
        assert not h.glm.violations


async def test_breaker_answers_at_once_then_tries_again(redis_url: str, key_prefix: str) -> None:
    llm = {"retry_attempts": 1, "breaker_failures": 2, "breaker_cooldown": 0.5}
    async with running_bot(redis_url, key_prefix, llm=llm) as h:
        h.glm.script(*[Reply(status=500, code="500")] * 2, Reply(text="Back."))
        for n in (1, 2):
            h.tg.private_text(USER, f"q{n}")
            await h.tg.wait_for(lambda n=n: len(h.texts(USER)) == n, what=f"error {n}")
            await h.wait_idle()

        h.tg.private_text(USER, "q3")
        await h.tg.wait_for(lambda: len(h.texts(USER)) == 3, what="breaker notice")
        assert "GLM is temporarily unavailable" in h.last_text(USER)
        assert len(h.glm.requests) == 2, "the open breaker did not call GLM"
        await h.wait_idle()

        # the cool-down is a span of time, not an event to wait for
        opened = time.monotonic()
        await h.tg.wait_for(lambda: time.monotonic() - opened > 0.5, what="cool-down")
        h.tg.private_text(USER, "q4")
        await answered(h, USER, "Back.")
        assert h.glm_messages() == [{"role": "user", "content": "q4"}]


async def test_owner_alerted_once_for_two_balance_failures(redis_url: str, key_prefix: str) -> None:
    no_balance = Reply(status=429, code="1113", message="余额不足")
    async with running_bot(redis_url, key_prefix, telegram={"owners": [OWNER]}) as h:
        h.glm.script(no_balance, no_balance)
        for user in (USER, OTHER):
            h.tg.private_text(user, "hello")
            await h.tg.wait_for(lambda u=user: "unavailable" in h.last_text(u), what="notice")
            await h.wait_idle()
        assert len(h.glm.requests) == 2, "no balance is not retried"
        (alert,) = h.tg.chat_messages(OWNER)
        assert "balance" in alert.text
        assert "余额不足" in alert.text, "the owner sees GLM's own words"
        assert "test-key-secret" not in alert.text


async def test_errors_in_chinese_for_chinese_users(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, llm={"retry_attempts": 1}) as h:
        h.glm.script(Reply(status=500, code="500"), Reply(status=401, code="1002"))
        h.tg.private_text(USER, "你好", language_code="zh-hans")
        await h.tg.wait_for(lambda: "GLM 这次没有回应" in h.last_text(USER), what="zh error")
        await h.wait_idle()
        h.tg.private_text(USER, "你好", language_code="zh-hans")
        await h.tg.wait_for(lambda: "助手暂时不可用" in h.last_text(USER), what="zh unavailable")


async def test_the_same_update_twice_is_answered_once(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(Reply(text="Once."), Reply(text="Next."))
        update: dict[str, Any] = {
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": USER, "type": "private", "first_name": "Alice"},
                "from": {"id": USER, "is_bot": False, "first_name": "Alice"},
                "text": "hello",
            }
        }
        h.tg.push_update(update)
        h.tg.push_update(update)  # the same update_id: a redelivery
        await answered(h, USER, "Once.")
        h.tg.private_text(USER, "next")
        await h.glm.wait_for(
            lambda: any(r["messages"][-1]["content"] == "next" for r in h.glm.requests),
            what="the next question",
        )
        await answered(h, USER, "Next.")
        assert h.texts(USER) == ["Once.", "Next."]
        assert len(h.glm.requests) == 2
        assert await stored(h, USER) == 4


async def test_updates_another_replica_claimed_leave_no_trace(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A question, a group /ask and a command that another process claimed first: each
    is dropped before dispatch, and nothing is asked, shown or kept."""
    caplog.set_level(logging.INFO)
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(Reply(text="Warm."), Reply(text="Marker."))
        warm = h.tg.private_text(USER, "warm up")
        await answered(h, USER, "Warm.")
        claimed = [warm + 1, warm + 2, warm + 3]
        keys = Keys(key_prefix, h.tg.bot_id)
        redis = h.app.redis
        assert redis is not None
        for update_id in claimed:
            await redis.set(keys.bot_scoped(f"update:{update_id}"), "1", ex=60)
        before = {m: len(h.tg.calls_of(m)) for m in ("sendChatAction", "sendMessage")}

        pushed = [
            h.tg.private_text(OTHER, "a question"),
            h.tg.group_text(GROUP, OTHER, "/ask a question"),
            h.tg.private_text(OTHER, "/help"),
        ]
        assert pushed == claimed
        await h.tg.wait_for(
            lambda: all(f"update {u} dropped: already processed" in caplog.text for u in claimed),
            what="the three updates dropped",
        )
        h.tg.private_text(USER, "marker")
        await answered(h, USER, "Marker.")

        asked = [r["messages"][-1]["content"] for r in h.glm.requests]
        assert asked == ["warm up", "marker"]
        after = {m: len(h.tg.calls_of(m)) for m in ("sendChatAction", "sendMessage")}
        assert after == {m: n + 1 for m, n in before.items()}, "only the marker's"
        assert h.tg.chat_messages(OTHER) == []
        assert h.tg.chat_messages(GROUP) == []
        assert await stored(h, OTHER) == 0
        assert await stored(h, GROUP) == 0
        assert await redis.hlen(keys.bot_scoped("pending")) == 0, "the journal is clean"


async def test_redis_outage_during_commands_gets_a_reply(
    own_redis: RedisProcess, key_prefix: str
) -> None:
    async with running_bot(own_redis.url, key_prefix, reply=Reply(text="ok")) as h:
        h.tg.private_text(USER, "remember this")
        await answered(h, USER, "ok")

        own_redis.stop()
        h.tg.private_text(USER, "/reset")
        await h.tg.wait_for(
            lambda: "temporarily unavailable" in h.last_text(USER), timeout=20, what="notice"
        )
        own_redis.start()

        h.tg.private_text(USER, "what did I say?")
        await h.tg.wait_for(lambda: len(h.glm.requests) == 2, what="second request")
        assert [m["content"] for m in h.glm_messages()] == [
            "remember this",
            "ok",
            "what did I say?",
        ]


async def test_shutdown_finishes_the_answer_in_flight(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.app")
    pieces = [f"w{i} " for i in range(10)]
    slow = Reply(tokens=pieces, token_interval=0.1)
    async with running_bot(redis_url, key_prefix, reply=slow) as h:
        h.tg.private_text(USER, "take your time")
        await h.glm.wait_for(lambda: len(h.glm.requests) == 1, what="request")
    # the block ended: polling stopped while GLM was still answering
    assert h.last_text(USER) == "".join(pieces).strip()
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.app"]
    assert any("waiting up to" in line and "1 answers" in line for line in logged)
    assert any("all running answers finished" in line for line in logged)
