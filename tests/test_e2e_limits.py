"""Access control, rate limits, daily token quotas and /usage, end to end: the real
dispatcher polling the fake Telegram, the fake GLM, real Redis; time moved by a clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.guards.quotas import QuotaService
from bot.storage.keys import ConversationKey
from tests.fakes.glm import Reply
from tests.harness import BotHarness, running_bot

ALICE, BOB, OWNER = 1001, 1002, 1009
GROUP, CLOSED_GROUP = -100777, -100888
BOT = "@glm_test_bot"
NOON = datetime(2024, 3, 10, 12, 0, tzinfo=UTC).timestamp()
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def use_clock(h: BotHarness) -> Clock:
    """Give the bot's limits a clock the test moves (no sleeping through windows)."""
    clock = Clock()
    quotas: QuotaService = h.app.dispatcher["quotas"]
    quotas.clock = clock
    return clock


def mention(text: str) -> dict[str, Any]:
    return {
        "text": f"{BOT} {text}",
        "entities": [{"type": "mention", "offset": 0, "length": len(BOT)}],
    }


def refusals(caplog: pytest.LogCaptureFixture, what: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(what))


async def ask_private(h: BotHarness, user: int, question: str) -> None:
    """Ask and wait until the answer is complete."""
    before = len(h.glm.requests)
    h.tg.private_text(user, question)
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.tg.wait_for(lambda: h.last_text(user) == "Hello from GLM!", what="answer")
    await settled(h)


async def settled(h: BotHarness) -> None:
    """Until every answer, and the charging of its tokens after it, is done."""
    await h.wait_idle()
    assert await h.app.turns.drain(10) == 0


@pytest.fixture
def guard_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="handlers.guards")
    return caplog


async def test_allowlist_refuses_strangers_once_and_costs_nothing(
    redis_url: str, key_prefix: str, guard_log: pytest.LogCaptureFixture
) -> None:
    async with running_bot(
        redis_url,
        key_prefix,
        access={"mode": "allowlist", "users": [ALICE], "chats": [GROUP]},
        telegram={"owners": [OWNER]},
        groups={"listen": True},
    ) as h:
        for text in ("hello?", "anyone?", "/help"):
            h.tg.private_text(BOB, text)
        await h.tg.wait_for(lambda: refusals(guard_log, "access:") == 3, what="3 refusals")
        await h.wait_for_messages(BOB, 1)  # logged as told, then sent
        (refusal,) = h.texts(BOB)
        assert "private bot" in refusal
        assert str(BOB) in refusal, "the stranger learns the id to give the owner"

        # a closed group: unaddressed messages are not even kept as context
        h.tg.group_text(CLOSED_GROUP, BOB, "chatting among ourselves")
        h.tg.group_text(CLOSED_GROUP, BOB, **mention("who are you?"))
        h.tg.group_text(CLOSED_GROUP, BOB, **mention("hello??"))
        await h.tg.wait_for(lambda: refusals(guard_log, "access:") == 6, what="3 more")
        await h.wait_for_messages(CLOSED_GROUP, 1)
        (refusal,) = h.texts(CLOSED_GROUP)
        assert "private bot" in refusal

        assert not h.glm.requests, "strangers never reach GLM"
        assert await h.app.store.length(ConversationKey(BOB)) == 0
        assert await h.app.store.length(ConversationKey(CLOSED_GROUP)) == 0

        # the allowed: a listed user, anyone in a listed chat, the owner
        await ask_private(h, ALICE, "hi")
        await ask_private(h, OWNER, "hi")
        h.tg.group_text(GROUP, BOB, **mention("hi from an open group"))
        await h.tg.wait_for(lambda: h.last_text(GROUP) == "Hello from GLM!", what="group")
        assert len(h.glm.requests) == 3


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_per_minute_limit_says_when_and_resets(
    redis_url: str, key_prefix: str, guard_log: pytest.LogCaptureFixture, store: str
) -> None:
    url = redis_url if store == "redis" else None
    async with running_bot(url, key_prefix, limits={"user_per_minute": 2}) as h:
        clock = use_clock(h)
        await ask_private(h, ALICE, "one")
        h.tg.private_text(ALICE, "/help")  # commands are not counted
        await h.wait_for_messages(ALICE, 2)
        clock.now += 15
        await ask_private(h, ALICE, "two")

        h.tg.private_text(ALICE, "three")
        await h.tg.wait_for(lambda: "Try again" in h.last_text(ALICE), what="limit reply")
        assert h.last_text(ALICE).endswith("Try again in 45 s."), h.last_text(ALICE)
        h.tg.private_text(ALICE, "four")
        await h.tg.wait_for(lambda: refusals(guard_log, "limits:") == 2, what="quiet refusal")
        assert len(h.texts(ALICE)) == 4, "the limit is announced once, not per message"
        assert len(h.glm.requests) == 2

        clock.now += 45
        await ask_private(h, ALICE, "five")
        assert len(h.glm.requests) == 3
        assert h.glm_messages()[-1]["content"] == "five"


async def test_group_limit_counts_only_messages_to_the_bot(
    redis_url: str, key_prefix: str, guard_log: pytest.LogCaptureFixture
) -> None:
    async with running_bot(redis_url, key_prefix, limits={"chat_per_minute": 1}) as h:
        use_clock(h)
        for text in ("just chatting", "/help", "more chatting"):
            h.tg.group_text(GROUP, ALICE, text)
        await h.wait_for_messages(GROUP, 1)  # the /help answer
        h.tg.group_text(GROUP, ALICE, **mention("first question"))
        await h.tg.wait_for(lambda: h.last_text(GROUP) == "Hello from GLM!", what="answer")
        await h.wait_idle()

        h.tg.group_text(GROUP, BOB, "/ask@glm_test_bot second question", first_name="Bob")
        await h.tg.wait_for(lambda: "Try again" in h.last_text(GROUP), what="limit reply")
        assert "This chat sends me more than 1 messages a minute" in h.last_text(GROUP)
        assert refusals(guard_log, "limits: chat_rate") == 1
        assert len(h.glm.requests) == 1


async def test_daily_token_quota_exhausted_then_reset_next_day(
    redis_url: str, key_prefix: str
) -> None:
    reply = Reply(text="Hello from GLM!", usage=USAGE)
    async with running_bot(
        redis_url, key_prefix, reply=reply, limits={"user_daily_tokens": 2000}
    ) as h:
        clock = use_clock(h)
        await ask_private(h, ALICE, "one")  # 1,500 tokens charged
        await ask_private(h, ALICE, "two")  # allowed: 1,500 < 2,000; now 3,000
        h.tg.private_text(ALICE, "three")
        await h.tg.wait_for(lambda: "quota" in h.last_text(ALICE), what="quota reply")
        assert h.last_text(ALICE) == (
            "You've used your daily quota of 2,000 tokens. It resets at 00:00 UTC, in 12 h 0 min."
        )
        assert len(h.glm.requests) == 2

        clock.now += 12 * 3600  # 00:00 UTC
        await ask_private(h, ALICE, "a new day")
        assert len(h.glm.requests) == 3


async def test_owners_are_exempt(redis_url: str, key_prefix: str) -> None:
    async with running_bot(
        redis_url,
        key_prefix,
        reply=Reply(text="Hello from GLM!", usage=USAGE),
        limits={"user_per_minute": 1, "user_daily_tokens": 10},
        telegram={"owners": [OWNER]},
    ) as h:
        use_clock(h)
        for question in ("one", "two", "three"):
            await ask_private(h, OWNER, question)
        assert len(h.glm.requests) == 3


async def test_usage_reports_what_glm_counted(redis_url: str, key_prefix: str) -> None:
    async with running_bot(
        redis_url,
        key_prefix,
        reply=Reply(text="Hello from GLM!", usage=USAGE),
        telegram={"owners": [OWNER]},
        # CNY per million tokens, merged into the shipped catalog's default model
        models={"glm-4.7-flash": {"input_price": 100, "output_price": 200}},
        limits={"user_daily_tokens": 100_000},
    ) as h:
        use_clock(h)
        await ask_private(h, ALICE, "one")
        await ask_private(h, ALICE, "two")
        h.tg.private_text(ALICE, "/usage")
        await h.tg.wait_for(lambda: "Your usage" in h.last_text(ALICE), what="/usage")
        report = h.last_text(ALICE)
        # per answer (1,200 x 100 + 300 x 200) / 1M = 0.18 CNY
        today = "Today: 3,000 tokens (2,400 prompt + 600 answer) in 2 requests, ≈ 0.3600 CNY"
        assert today in report
        assert "This month: 3,000 tokens" in report
        assert "Daily quota: 3,000 of 100,000 tokens used; it resets in 12 h 0 min" in report
        assert "By model this month:\nglm-4.7-flash: 3,000 tokens, ≈ 0.3600 CNY" in report
        assert "whole bot" not in report, "totals are for owners"

        h.tg.group_text(GROUP, ALICE, **mention("in the group"))
        await h.tg.wait_for(lambda: h.last_text(GROUP) == "Hello from GLM!", what="answer")
        await settled(h)
        h.tg.group_text(GROUP, ALICE, "/usage")
        await h.tg.wait_for(lambda: "This chat" in h.last_text(GROUP), what="group /usage")
        report = h.last_text(GROUP)
        assert "Today: 4,500 tokens" in report
        assert "Today: 1,500 tokens (1,200 prompt + 300 answer) in 1 request," in report

        h.tg.private_text(OWNER, "/usage")
        await h.tg.wait_for(lambda: "whole bot" in h.last_text(OWNER), what="owner /usage")
        report = h.last_text(OWNER)
        assert "Today: nothing yet" in report, "the owner's own usage"
        assert "This month: 4,500 tokens (3,600 prompt + 900 answer) in 3 requests" in report
        assert "≈ 0.5400 CNY" in report
        assert "glm-4.7-flash: 4,500 tokens, ≈ 0.5400 CNY" in report
        assert f"1. {ALICE}: 3,000 tokens, ≈ 0.3600 CNY" in report
        assert f"2. {GROUP}: 1,500 tokens, ≈ 0.1800 CNY" in report

        h.tg.group_text(GROUP, OWNER, "/usage")
        await h.tg.wait_for(lambda: "private chat" in h.last_text(GROUP), what="owner in group")
        assert "whole bot" not in h.last_text(GROUP), "no other chats' figures in a group"


async def test_a_stopped_answer_is_charged_an_estimate(redis_url: str, key_prefix: str) -> None:
    reply = Reply(tokens=[f"word{i} " for i in range(200)], token_interval=0.02)
    async with running_bot(redis_url, key_prefix, reply=reply) as h:
        use_clock(h)
        h.tg.private_text(ALICE, "Count slowly, please")
        await h.tg.wait_for(
            lambda: any(d.texts for (chat, _), d in h.tg.drafts.items() if chat == ALICE),
            what="the first words",
        )
        h.tg.private_text(ALICE, "/stop")
        await h.tg.wait_for(lambda: "Stopped" in h.last_text(ALICE), what="stopped answer")
        await settled(h)
        quotas: QuotaService = h.app.dispatcher["quotas"]
        report = await quotas.user_report(ALICE)
        assert report.today.requests == 1
        assert report.today.prompt > 0
        assert 0 < report.today.completion < 200 * 3, "what was shown, not the whole reply"
