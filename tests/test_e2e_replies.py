"""Command replies, refusals and hints, end to end: every one arrives, through Telegram's
flood limits and lost reply targets, and says what fits where it is shown."""

from __future__ import annotations

import logging

import pytest

from bot.guards.admins import AdminChecker
from bot.storage.keys import Keys
from tests.fakes.telegram import Limits
from tests.harness import BotHarness, eventually, running_bot

USER = 501
GROUP = -100321
ALICE, BOB, CAROL, ADMIN = 11, 12, 13, 19
BOT = "@glm_test_bot"
MISSING_TARGET = "Bad Request: message to be replied not found"


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def last_user_message(h: BotHarness, chat_id: int) -> int:
    return max(h.tg.chat(chat_id).user_messages)


async def test_six_help_in_a_second_all_get_a_reply(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Telegram's own pace: 3 messages back to back, then one a second (429 beyond it)
    limits = Limits(per_chat_interval=1.0, retry_after=1)
    async with running_bot(redis_url, key_prefix, fake_telegram={"limits": limits}) as h:
        for _ in range(6):
            h.tg.private_text(USER, "/help")
        await h.wait_for_messages(USER, 6, timeout=20)
        assert all("/reset" in text for text in h.texts(USER))
        assert h.tg.rejected_429() >= 1, "the fake refused some: the bot waited and resent"
    assert not errors(caplog)


async def test_a_429_on_a_command_reply_is_waited_out(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.fail_next("sendMessage", error_code=429, retry_after=1)
        h.tg.group_text(GROUP, ALICE, "/usage")
        await h.wait_for_messages(GROUP, 1)
        assert "Your usage" in h.last_text(GROUP)
        refused, sent = h.tg.calls_of("sendMessage")
        assert refused.error_code == 429
        assert sent.at - refused.at >= 0.9, "sent again after retry_after"
    assert not errors(caplog)


async def test_a_deleted_command_still_gets_its_reply(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.group_text(GROUP, ALICE, "/persona")
        # deleted before the bot could answer it (the bot has not polled yet)
        h.tg.delete_message(GROUP, last_user_message(h, GROUP))
        await h.wait_for_messages(GROUP, 1)
        (shown,) = h.tg.chat_messages(GROUP)
        assert "persona" in shown.text.lower()
        assert shown.reply_to_message_id is None

        # and when Telegram refuses the reply all the same (e.g. across forum topics)
        h.tg.fail_next("sendMessage", description=MISSING_TARGET)
        h.tg.group_text(GROUP, ALICE, "/help")
        await h.wait_for_messages(GROUP, 2)
        assert "/ask" in h.last_text(GROUP)
        assert h.tg.chat_messages(GROUP)[-1].reply_to_message_id is None
    assert not errors(caplog)


async def test_group_texts_say_how_to_ask_here(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.group_text(GROUP, ALICE, "/start")
        await h.wait_for_messages(GROUP, 1)
        start = h.last_text(GROUP)
        assert BOT in start
        assert "/ask <question>" in start
        assert "reply to one of my messages" in start
        assert "Write me anything" not in start, "not the private-chat greeting"

        h.tg.group_text(GROUP, ALICE, "/ask")
        await h.wait_for_messages(GROUP, 2)
        assert "after /ask" in h.last_text(GROUP)
        assert "mention" not in h.last_text(GROUP)

        h.tg.group_text(GROUP, ALICE, "/persona")
        await h.wait_for_messages(GROUP, 3)
        assert "Group admins can set one" in h.last_text(GROUP)

        h.tg.group_text(GROUP, ALICE, "/help", language_code="zh-hans")
        await h.wait_for_messages(GROUP, 4)
        assert "/ask <问题>" in h.last_text(GROUP)
        assert "回复我的消息" in h.last_text(GROUP)
        assert not h.glm.requests


async def test_a_member_promoted_a_moment_ago_may_set_the_persona(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.set_member(GROUP, ADMIN, "administrator", first_name="Ada")
        h.tg.group_text(GROUP, ADMIN, "/persona Be brief.", first_name="Ada")
        await h.wait_for_messages(GROUP, 1)
        assert "saved" in h.last_text(GROUP)  # the admin list is cached now: {Ada}
        fetched = len(h.tg.calls_of("getChatAdministrators"))
        admins: AdminChecker = h.app.dispatcher["admins"]
        now = admins.clock()
        admins.clock = lambda: now + 11  # past the re-check interval, within the cache's

        # promoted where the bot is not told (no chat_member update): looked up again
        h.tg.set_member(GROUP, BOB, "administrator", first_name="Bob")
        h.tg.group_text(GROUP, BOB, "/persona Be kind.", first_name="Bob")
        await h.wait_for_messages(GROUP, 2)
        assert "saved" in h.last_text(GROUP)
        assert len(h.tg.calls_of("getChatAdministrators")) == fetched + 1

        # a refusal right after that one does not ask Telegram again
        h.tg.group_text(GROUP, CAROL, "/persona Be loud.", first_name="Carol")
        await h.wait_for_messages(GROUP, 3)
        assert "admins" in h.last_text(GROUP)
        assert len(h.tg.calls_of("getChatAdministrators")) == fetched + 1


async def test_chat_member_updates_keep_the_admin_list_current(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        allowed = h.tg.calls_of("getUpdates")[-1].params.get("allowed_updates")
        assert "chat_member" in allowed
        h.tg.group_text(GROUP, CAROL, "/persona Be loud.", first_name="Carol")
        await h.wait_for_messages(GROUP, 1)
        assert "admins" in h.last_text(GROUP)  # refused, and the list was just fetched

        # promoted, and Telegram says so: no waiting for the cache or the re-check
        assert h.app.redis is not None
        cached = Keys(key_prefix, h.tg.bot_id).chat_scoped(GROUP, "admins")
        assert await h.app.redis.exists(cached)
        h.tg.change_member(GROUP, CAROL, "administrator")
        await eventually(lambda: h.app.redis.exists(cached), 0, what="the admin list dropped")
        h.tg.group_text(GROUP, CAROL, "/persona Be loud.", first_name="Carol")
        await h.wait_for_messages(GROUP, 2)
        assert "saved" in h.last_text(GROUP)
