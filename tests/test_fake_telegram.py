"""The fake Telegram Bot API server, driven through a real aiogram Bot to prove the shapes."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    MessageGenerationStopped,
    ReplyParameters,
)
from aiohttp import web

from tests.fakes.telegram import FakeTelegram, Limits
from tests.fakes.telegram_text import EntityParseError, parse_html

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
USER = 100
GROUP = -1001234567890
REPO_ROOT = Path(__file__).resolve().parents[1]
KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Stop", callback_data="stop")]]
)
KEYBOARD_JSON = {"inline_keyboard": [[{"text": "Stop", "callback_data": "stop"}]]}


def dump(model: Any) -> Any:
    # models parsed from answers carry the bot in private state, so compare plain data
    return None if model is None else model.model_dump(exclude_none=True)


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    return Bot(token or fake.token, session=session)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    client = make_bot(fake)
    yield client
    await client.session.close()


class ManualClock:
    """Drives the fake's flood control so limit windows need no real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- account, sending, editing -----------------------------------------------------------------


async def test_get_me(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (fake.bot_id, True, fake.bot_username)
    [call] = fake.calls_of("getMe")
    assert call.ok
    assert call.error_code is None
    assert fake.method_counts["getMe"] == 1


async def test_send_edit_and_not_modified(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "hello")
    assert sent.from_user is not None
    assert (sent.from_user.id, sent.from_user.is_bot) == (fake.bot_id, True)
    assert (sent.chat.id, sent.chat.type, sent.text) == (USER, "private", "hello")

    edited = await bot.edit_message_text("hello, world", chat_id=USER, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert edited.text == "hello, world"
    assert edited.edit_date is not None

    with pytest.raises(TelegramBadRequest) as excinfo:
        await bot.edit_message_text("hello, world", chat_id=USER, message_id=sent.message_id)
    assert excinfo.value.message == NOT_MODIFIED
    # Telegram trims surrounding whitespace, so this is the same content too
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("hello, world\n", chat_id=USER, message_id=sent.message_id)

    [stored] = fake.chat_messages(USER)
    assert stored.history == ["hello", "hello, world"]
    assert stored.edits == 1
    last = fake.calls_of("editMessageText")[-1]
    assert (last.ok, last.error_code, last.description) == (False, 400, NOT_MODIFIED)


async def test_reply_markup_is_part_of_the_content(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "pick", reply_markup=KEYBOARD)
    assert dump(sent.reply_markup) == KEYBOARD_JSON
    # an edit without reply_markup drops the keyboard, so the same text is still a change
    edited = await bot.edit_message_text("pick", chat_id=USER, message_id=sent.message_id)
    assert isinstance(edited, Message)
    assert edited.reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id)
    again = await bot.edit_message_reply_markup(
        chat_id=USER, message_id=sent.message_id, reply_markup=KEYBOARD
    )
    assert isinstance(again, Message)
    assert dump(again.reply_markup) == KEYBOARD_JSON
    [stored] = fake.chat_messages(USER)
    assert (stored.edits, stored.history) == (2, ["pick", "pick"])
    assert stored.reply_markup == KEYBOARD_JSON

    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=too_long)


async def test_text_length_and_emptiness(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as excinfo:
        await bot.send_message(USER, "  \n\t ")
    assert excinfo.value.message == "Bad Request: message text is empty"
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode="HTML")

    await bot.send_message(USER, "a" * 4096)
    # the limit counts UTF-16 code units: an emoji outside the BMP takes two
    await bot.send_message(USER, "😀" * 2048)
    # markup is not text: the limit applies after entity parsing
    await bot.send_message(USER, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    for too_long in ("a" * 4097, "😀" * 2049):
        with pytest.raises(TelegramBadRequest) as excinfo:
            await bot.send_message(USER, too_long)
        assert excinfo.value.message == "Bad Request: message is too long"
    assert len(fake.chat_messages(USER)) == 3

    sent = await bot.send_message(USER, "  \n hi there \n")
    assert sent.text == "hi there"


async def test_html_parse_error(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as excinfo:
        await bot.send_message(USER, "line<br/>next", parse_mode="HTML")
    assert excinfo.value.message == (
        'Bad Request: can\'t parse entities: Unsupported start tag "br/" at byte offset 4'
    )
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "<b>never closed", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message(USER, "*bold*", parse_mode="MarkdownV2")


async def test_html_is_stored_as_plain_text_with_entities(fake: FakeTelegram, bot: Bot) -> None:
    html = (
        "<b>Bold <i>both</i></b> 😀 "
        '<a href="https://example.com/?a=1&amp;b=2">link</a> &lt;tag&gt; &quot;q&quot; &#39;s\n'
        '<pre><code class="language-python">print(1)</code></pre>'
        '<span class="tg-spoiler">secret</span><blockquote expandable>quote</blockquote>'
    )
    sent = await bot.send_message(USER, html, parse_mode="HTML")
    text = 'Bold both 😀 link <tag> "q" \'s\nprint(1)secretquote'
    assert sent.text == text
    entities = sent.entities or []
    assert [(e.type, e.extract_from(text)) for e in entities] == [
        ("bold", "Bold both"),
        ("italic", "both"),
        ("text_link", "link"),
        ("pre", "print(1)"),
        ("spoiler", "secret"),
        ("expandable_blockquote", "quote"),
    ]
    assert entities[2].url == "https://example.com/?a=1&b=2"
    assert entities[3].language == "python"

    [stored] = fake.chat_messages(USER)
    assert stored.text == text
    assert stored.parse_mode == "HTML"
    assert stored.entities == [dump(e) for e in entities]


async def test_entities_list_is_checked(fake: FakeTelegram, bot: Bot) -> None:
    text = "😀 bold"  # the emoji is two UTF-16 units, so "bold" starts at 3
    sent = await bot.send_message(
        USER, text, entities=[MessageEntity(type="bold", offset=3, length=4)]
    )
    assert sent.entities is not None
    assert sent.entities[0].extract_from(text) == "bold"
    await bot.send_message(
        USER, "code", entities=[MessageEntity(type="pre", offset=0, length=4, language="py")]
    )
    assert fake.chat_messages(USER)[1].entities == [
        {"type": "pre", "offset": 0, "length": 4, "language": "py"}
    ]
    bad_entities = [
        MessageEntity(type="bold", offset=3, length=5),  # one unit past the end
        MessageEntity(type="blink", offset=0, length=1),
        MessageEntity(type="text_link", offset=0, length=1),  # no url
    ]
    for entity in bad_entities:
        with pytest.raises(TelegramBadRequest, match="can't parse entities"):
            await bot.send_message(USER, text, entities=[entity])


async def test_edit_of_a_deleted_message(fake: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_message(USER, "one")
    second = await bot.send_message(USER, "two")
    fake.delete_message(USER, first.message_id)
    with pytest.raises(TelegramBadRequest) as excinfo:
        await bot.edit_message_text("uno", chat_id=USER, message_id=first.message_id)
    assert excinfo.value.message == "Bad Request: message to edit not found"

    assert await bot.delete_message(USER, second.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER, second.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)
    assert fake.chat_messages(USER) == []
    deleted = fake.message(USER, first.message_id)
    assert deleted is not None
    assert deleted.deleted
    with pytest.raises(ValueError, match="no message 999"):
        fake.delete_message(USER, 999)


# -- flood limits and injected faults ----------------------------------------------------------


async def test_per_chat_limit_refuses_during_the_window(fake: FakeTelegram, bot: Bot) -> None:
    clock = ManualClock()
    fake.clock = clock
    fake.limits = Limits(per_chat_interval=1.0, retry_after=3)
    for i in range(3):  # the tolerated burst
        await bot.send_message(USER, f"m{i}")
    with pytest.raises(TelegramRetryAfter) as excinfo:
        await bot.send_message(USER, "m3")
    assert excinfo.value.retry_after == 3
    refused = fake.calls_of("sendMessage")[-1]
    assert (refused.error_code, refused.description) == (429, "Too Many Requests: retry after 3")
    await bot.send_message(USER + 1, "another chat is not limited")

    clock.now += 2.0  # a token has come back, but Telegram keeps refusing until retry_after
    with pytest.raises(TelegramRetryAfter) as excinfo:
        await bot.edit_message_text("edited", chat_id=USER, message_id=1)
    assert excinfo.value.retry_after == 1
    clock.now += 1.0
    await bot.send_message(USER, "m4")

    assert fake.rejected_429() == 2
    assert [m.text for m in fake.chat_messages(USER)] == ["m0", "m1", "m2", "m4"]
    assert fake.chat_messages(USER)[0].edits == 0


async def test_group_and_global_limits(fake: FakeTelegram, bot: Bot) -> None:
    clock = ManualClock()
    fake.clock = clock
    fake.limits.group_per_minute = 2
    await bot.send_message(GROUP, "1")
    await bot.send_message(GROUP, "2")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(GROUP, "3")
    await bot.send_message(USER, "private chats have no group limit")
    clock.now += 61
    await bot.send_message(GROUP, "3")

    fake.limits = Limits(global_per_second=2)
    await bot.send_message(USER, "a")
    await bot.send_message(USER + 1, "b")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(USER + 2, "c")
    with pytest.raises(TelegramRetryAfter):  # the global window covers every chat
        await bot.send_message(USER + 3, "d")
    # drafts are free unless count_drafts
    await bot.send_message_draft(USER, draft_id=1, text="draft")
    fake.limits.count_drafts = True
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message_draft(USER, draft_id=1, text="draft 2")
    clock.now += 1
    await bot.send_message(USER + 2, "c")
    assert fake.rejected_429() == 4
    assert fake.drafts[(USER, 1)].texts == ["draft"]


async def test_fail_next(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next("sendMessage", description="Bad Request: chat not found")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(USER, "x")
    await bot.send_message(USER, "x")

    fake.fail_next("sendMessage", error_code=429, times=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as excinfo:
            await bot.send_message(USER, "y")
        assert excinfo.value.retry_after == fake.limits.retry_after
    await bot.send_message(USER, "y")

    fake.fail_next("getMe", error_code=502, description="Bad Gateway")
    with pytest.raises(TelegramServerError):
        await bot.get_me()
    assert [m.text for m in fake.chat_messages(USER)] == ["x", "y"]
    assert fake.rejected_429() == 2


# -- drafts ------------------------------------------------------------------------------------


async def test_message_drafts(fake: FakeTelegram, bot: Bot) -> None:
    assert await bot.send_message_draft(USER, draft_id=7, text="") is True
    await bot.send_message_draft(USER, draft_id=7, text="Hel", can_stop=True)
    assert fake.drafts[(USER, 7)].can_stop
    await bot.send_message_draft(USER, draft_id=7, text="<b>Hello</b>", parse_mode="HTML")
    draft = fake.drafts[(USER, 7)]
    assert (draft.chat_id, draft.draft_id, draft.texts) == (USER, 7, ["", "Hel", "Hello"])

    with pytest.raises(TelegramBadRequest, match="TEXTDRAFT_PEER_INVALID"):
        await bot.send_message_draft(GROUP, draft_id=7, text="groups have no drafts")
    with pytest.raises(TelegramBadRequest, match="RANDOM_ID_INVALID"):
        await bot.send_message_draft(USER, draft_id=0, text="zero")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message_draft(USER, draft_id=7, text="a" * 4097)

    fake.drafts_supported = False
    with pytest.raises(TelegramNotFound) as excinfo:
        await bot.send_message_draft(USER, draft_id=7, text="old server")
    assert excinfo.value.message == "Not Found"
    assert len(fake.drafts[(USER, 7)].texts) == 3


# -- updates -----------------------------------------------------------------------------------


async def test_long_poll_returns_a_pushed_update_promptly(fake: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for(lambda: fake.waiting_polls() == 1, what="the long poll to park")
    [parked] = fake.calls_of("getUpdates")  # visible while still waiting
    assert parked.params["timeout"] == 30
    loop = asyncio.get_running_loop()
    pushed_at = loop.time()
    update_id = fake.private_text(USER, "hi", username="alice", last_name="Liddell")
    [update] = await asyncio.wait_for(poll, 5)
    assert loop.time() - pushed_at < 1.0
    assert update.update_id == update_id
    message = update.message
    assert message is not None
    assert message.from_user is not None
    assert (message.text, message.chat.id, message.chat.type) == ("hi", USER, "private")
    assert (message.from_user.first_name, message.from_user.language_code) == ("Alice", "en")
    assert message.chat.username == "alice"


async def test_offset_limit_and_allowed_updates(fake: FakeTelegram, bot: Bot) -> None:
    ids = [fake.private_text(USER, f"m{i}") for i in range(3)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates()] == ids  # nothing confirmed yet
    assert [u.update_id for u in await bot.get_updates(offset=ids[1] + 1)] == ids[2:]
    assert fake.pending_updates() == 1

    fake.stop_generation(USER, draft_id=5)
    last = fake.private_text(USER, "after")
    # types left out of allowed_updates are never delivered
    updates = await bot.get_updates(offset=ids[2] + 1, allowed_updates=["message"])
    assert [u.update_id for u in updates] == [last]
    assert fake.stats()["updates"]["dropped"] == 1
    assert await bot.get_updates(offset=last + 1) == []
    assert fake.pending_updates() == 0


async def test_updates_parse_as_aiogram_types(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(USER, "Generating…", reply_markup=KEYBOARD)
    fake.stop_generation(USER, draft_id=7, message_thread_id=3)
    fake.press_button(USER, sent.message_id, USER, "stop")
    stopped_update, button_update = await bot.get_updates(
        allowed_updates=["stopped_message_generation", "callback_query"]
    )

    stopped = stopped_update.stopped_message_generation
    assert isinstance(stopped, MessageGenerationStopped)
    assert (stopped.chat.id, stopped.draft_id, stopped.message_thread_id) == (USER, 7, 3)
    assert stopped_update.event_type == "stopped_message_generation"

    query = button_update.callback_query
    assert isinstance(query, CallbackQuery)
    assert (query.data, query.from_user.id) == ("stop", USER)
    assert isinstance(query.message, Message)
    assert query.message.message_id == sent.message_id
    assert query.message.from_user is not None
    assert query.message.from_user.id == fake.bot_id

    assert await bot.answer_callback_query(query.id, text="stopped") is True
    assert fake.callback_answers[query.id]["text"] == "stopped"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)


async def test_dispatcher_end_to_end(fake: FakeTelegram, bot: Bot) -> None:
    router = Router()
    stopped: list[MessageGenerationStopped] = []

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.reply(f"echo: {message.text}", reply_markup=KEYBOARD)

    @router.callback_query(F.data == "stop")
    async def on_stop(query: CallbackQuery) -> None:
        await query.answer("stopped")

    @router.stopped_message_generation()
    async def on_stopped(event: MessageGenerationStopped) -> None:
        stopped.append(event)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    try:
        fake.private_text(USER, "hi")
        await fake.wait_for(lambda: len(fake.chat_messages(USER)) == 1, what="the echo")
        [reply] = fake.chat_messages(USER)
        assert (reply.text, reply.reply_to_message_id) == ("echo: hi", 1)

        fake.press_button(USER, reply.message_id, USER, "stop")
        await fake.wait_for(lambda: len(fake.callback_answers) == 1, what="the callback answer")
        fake.stop_generation(USER, draft_id=9)
        await fake.wait_for(lambda: len(stopped) == 1, what="stopped_message_generation")
        assert stopped[0].draft_id == 9
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 15)
    allowed = fake.calls_of("getUpdates")[0].params["allowed_updates"]
    assert {"message", "callback_query", "stopped_message_generation"} <= set(allowed)


async def test_stop_answers_pending_long_polls(fake: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for(lambda: fake.waiting_polls() == 1, what="the long poll to park")
    await fake.stop()
    assert await asyncio.wait_for(poll, 5) == []


async def test_group_replies(fake: FakeTelegram, bot: Bot) -> None:
    mine = await bot.send_message(GROUP, "I am the bot")
    fake.group_text(GROUP, 7, "thanks", reply_to_message_id=mine.message_id, username="bob")
    [update] = await bot.get_updates()
    message = update.message
    assert message is not None
    assert message.chat.type == "supergroup"
    assert message.message_id == mine.message_id + 1  # one counter per chat
    assert message.reply_to_message is not None
    assert message.reply_to_message.from_user is not None
    assert message.reply_to_message.from_user.id == fake.bot_id
    assert message.reply_to_message.text == "I am the bot"

    answer = await bot.send_message(
        GROUP, "np", reply_parameters=ReplyParameters(message_id=message.message_id)
    )
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.message_id == message.message_id
    assert answer.reply_to_message.from_user is not None
    assert answer.reply_to_message.from_user.id == 7
    older = await bot.send_message(GROUP, "np", reply_to_message_id=message.message_id)
    assert older.reply_to_message is not None

    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(GROUP, "x", reply_parameters=ReplyParameters(message_id=999))
    lenient = ReplyParameters(message_id=999, allow_sending_without_reply=True)
    assert (await bot.send_message(GROUP, "x", reply_parameters=lenient)).reply_to_message is None

    fake.delete_message(GROUP, mine.message_id)
    fake.group_text(GROUP, 7, "reply to a deleted message", reply_to_message_id=mine.message_id)
    [update] = await bot.get_updates(offset=update.update_id + 1)
    assert update.message is not None
    assert update.message.reply_to_message is None


async def test_forum_topics(fake: FakeTelegram, bot: Bot) -> None:
    fake.group_text(GROUP, 7, "in a topic", message_thread_id=55, is_forum=True)
    [update] = await bot.get_updates()
    message = update.message
    assert message is not None
    assert (message.is_topic_message, message.message_thread_id) == (True, 55)
    assert message.chat.is_forum
    # Telegram's quirk: a plain topic message "replies" to the topic-creation message
    assert message.reply_to_message is not None
    assert message.reply_to_message.message_id == 55
    assert message.reply_to_message.forum_topic_created is not None

    answer = await message.answer("in the same topic")
    assert (answer.is_topic_message, answer.message_thread_id) == (True, 55)
    assert fake.chat_messages(GROUP, message_thread_id=55) == fake.chat_messages(GROUP)
    assert fake.chat_messages(GROUP, message_thread_id=56) == []


async def test_chat_members(fake: FakeTelegram, bot: Bot) -> None:
    expected = {
        "creator": ChatMemberOwner,
        "administrator": ChatMemberAdministrator,
        "member": ChatMemberMember,
        "restricted": ChatMemberRestricted,
        "left": ChatMemberLeft,
        "kicked": ChatMemberBanned,
    }
    for user_id, (status, member_type) in enumerate(expected.items(), start=1):
        fake.set_member(GROUP, user_id, status, first_name=f"U{user_id}")
        member = await bot.get_chat_member(GROUP, user_id)
        assert isinstance(member, member_type)
        assert (member.status, member.user.id, member.user.first_name) == (
            status,
            user_id,
            f"U{user_id}",
        )
    unknown = await bot.get_chat_member(GROUP, 999)
    assert isinstance(unknown, ChatMemberMember)
    fake.set_member(GROUP, fake.bot_id, "administrator")
    me = await bot.get_chat_member(GROUP, fake.bot_id)
    assert me.user.is_bot

    admins = await bot.get_chat_administrators(GROUP)
    assert sorted(m.user.id for m in admins) == [1, 2, fake.bot_id]
    with pytest.raises(TelegramBadRequest, match="no administrators in the private chat"):
        await bot.get_chat_administrators(USER)
    chat = await bot.get_chat(GROUP)
    assert (chat.id, chat.type) == (GROUP, "supergroup")
    with pytest.raises(ValueError, match="unknown chat member status"):
        fake.set_member(GROUP, 1, "owner")


async def test_commands_per_scope_and_language(fake: FakeTelegram, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    chat_scope = BotCommandScopeChat(chat_id=USER)
    await bot.set_my_commands(
        [BotCommand(command="ask", description="Спросить")], scope=chat_scope, language_code="ru"
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    ru = await bot.get_my_commands(scope=chat_scope, language_code="ru")
    assert [(c.command, c.description) for c in ru] == [("ask", "Спросить")]
    assert await bot.get_my_commands(scope=chat_scope) == []
    assert fake.commands_for({"type": "chat", "chat_id": USER}, "ru") == [
        {"command": "ask", "description": "Спросить"}
    ]
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Not Valid", description="x")])


# -- webhooks and raw HTTP ---------------------------------------------------------------------


async def test_webhook_delivery(fake: FakeTelegram, bot: Bot) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def receive(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        received.append((secret, await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        with pytest.raises(TelegramBadRequest, match="secret token"):
            await bot.set_webhook(url, secret_token="no spaces allowed")
        assert await bot.set_webhook(url, secret_token="s3cret_-X") is True
        assert (await bot.get_webhook_info()).url == url
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()

        update = {"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}}
        assert await fake.deliver_webhook(update) == 200
        [(secret, body)] = received
        assert secret == "s3cret_-X"
        assert body["message"]["chat"]["id"] == 5
        assert isinstance(body["update_id"], int)

        assert await bot.delete_webhook() is True
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates() == []
        with pytest.raises(RuntimeError, match="setWebhook"):
            await fake.deliver_webhook(update)
    finally:
        await runner.cleanup()


async def test_raw_http_json_bodies_unknown_methods_and_tokens(
    fake: FakeTelegram, bot: Bot
) -> None:
    api = f"{fake.base_url}/bot{fake.token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/sendRichMessage", data={"chat_id": "1"}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        body = {
            "chat_id": USER,
            "text": "<b>json</b> body",
            "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]},
        }
        async with http.post(f"{api}/sendMessage", json=body) as resp:
            answer = await resp.json()
        assert answer["ok"] is True
        assert answer["result"]["text"] == "json body"
        assert answer["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
        reply = {"chat_id": str(USER), "text": "old style", "reply_to_message_id": "1"}
        async with http.post(f"{api}/sendMessage", data=reply) as resp:
            answer = await resp.json()
        assert answer["result"]["reply_to_message"]["message_id"] == 1
        async with http.get(f"{api}/getme") as resp:  # method names are case-insensitive
            assert (await resp.json())["result"]["id"] == fake.bot_id

    stranger = make_bot(fake, token="43:WRONG-TOKEN")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()
    assert fake.error_counts["getMe"] == 1
    assert fake.server_errors == []


async def test_counters_without_call_recording() -> None:
    async with FakeTelegram(record_calls=False) as quiet:
        client = make_bot(quiet)
        try:
            await client.send_message(USER, "a")
            await client.send_message(USER, "b")
        finally:
            await client.session.close()
        assert quiet.calls == []
        assert quiet.calls_of("sendMessage") == []
        assert quiet.method_counts["sendMessage"] == 2
        assert quiet.stats()["messages_sent"] == 2


async def test_control_api(fake: FakeTelegram, bot: Bot) -> None:
    async with aiohttp.ClientSession(base_url=fake.base_url) as http:
        async with http.post("/_fake/private_text", json={"user_id": USER, "text": "hi"}) as resp:
            [first] = (await resp.json())["update_ids"]
        private = {"id": USER, "type": "private"}
        stop = {"stopped_message_generation": {"chat": private, "draft_id": 1}}
        async with http.post("/_fake/updates", json=[stop]) as resp:
            [second] = (await resp.json())["update_ids"]
        updates = await bot.get_updates(allowed_updates=["message", "stopped_message_generation"])
        assert [u.update_id for u in updates] == [first, second]

        sent = await bot.send_message(USER, "answer")
        await bot.edit_message_text("answer, edited", chat_id=USER, message_id=sent.message_id)
        await bot.send_message_draft(USER, draft_id=3, text="draft")
        async with http.get(f"/_fake/chat/{USER}") as resp:
            chat = await resp.json()
        assert chat["messages"][0]["history"] == ["answer", "answer, edited"]
        assert chat["drafts"][0]["texts"] == ["draft"]

        async with http.get("/_fake/stats") as resp:
            stats = await resp.json()
        assert stats["methods"]["sendMessage"] == 1
        assert stats["messages_sent"] == 1
        assert stats["draft_updates"] == 1

        async with http.post("/_fake/limits", json={"per_chat_interval": 1}) as resp:
            assert (await resp.json())["per_chat_interval"] == 1
        assert fake.limits.per_chat_interval == 1
        async with http.post("/_fake/limits", json={"nonsense": 1}) as resp:
            assert resp.status == 400
        async with http.post("/_fake/reset") as resp:
            assert resp.status == 200
    assert fake.stats()["messages_sent"] == 0
    assert fake.chat_messages(USER) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_standalone_server() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.telegram",
        "--port",
        str(port),
        "--per-chat-interval",
        "1",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert f"http://127.0.0.1:{port}" in banner.decode()
        base = f"http://127.0.0.1:{port}"
        session = AiohttpSession(api=TelegramAPIServer.from_base(base))
        client = Bot("42:TEST-TOKEN", session=session)
        try:
            assert (await client.get_me()).id == 42
            async with aiohttp.ClientSession() as http:
                payload = {"user_id": USER, "text": "hi"}
                async with http.post(f"{base}/_fake/private_text", json=payload) as resp:
                    assert resp.status == 200
                [update] = await client.get_updates()
                assert update.message is not None
                for _ in range(3):
                    await client.send_message(USER, "burst")
                with pytest.raises(TelegramRetryAfter):
                    await client.send_message(USER, "too fast")
                async with http.get(f"{base}/_fake/stats") as resp:
                    stats = await resp.json()
            assert (stats["methods"]["sendMessage"], stats["rejected_429"]) == (4, 1)
        finally:
            await client.session.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0


# -- the HTML parser on its own ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("a<br>b", 'Unsupported start tag "br" at byte offset 1'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("é<p>x</p>", 'Unsupported start tag "p" at byte offset 2'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<a href="x>y</a>', "Unclosed end tag at byte offset 8"),
        ("<b class>x</b>", 'Expected equal sign in declaration of an attribute of the tag "b"'),
        ("<tg-emoji emoji-id=abc>x</tg-emoji>", "Invalid custom emoji identifier specified"),
    ],
)
def test_html_errors(html: str, error: str) -> None:
    with pytest.raises(EntityParseError) as excinfo:
        parse_html(html)
    assert str(excinfo.value).startswith(error)


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        ("a &amp; b &lt;c&gt; &foo; &#x1F600;", "a & b <c> &foo; 😀", []),
        ("<B>loud</B>", "loud", [{"type": "bold", "offset": 0, "length": 4}]),
        ("😀<u>u</u>", "😀u", [{"type": "underline", "offset": 2, "length": 1}]),
        ("<b></b>x", "x", []),
        (
            "<a>https://t.me</a>",
            "https://t.me",
            [{"type": "text_link", "offset": 0, "length": 12, "url": "https://t.me"}],
        ),
        ('<code class="language-py">x</code>', "x", [{"type": "code", "offset": 0, "length": 1}]),
        ("<pre>p</pre>", "p", [{"type": "pre", "offset": 0, "length": 1}]),
        (
            '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
            "👍",
            [
                {
                    "type": "custom_emoji",
                    "offset": 0,
                    "length": 2,
                    "custom_emoji_id": "5368324170671202286",
                }
            ],
        ),
    ],
)
def test_html_parsing(html: str, text: str, entities: list[dict[str, Any]]) -> None:
    parsed = parse_html(html)
    assert (parsed.text, parsed.entities) == (text, entities)
