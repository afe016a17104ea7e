"""/start, /help, /reset and /stop, in private chats and groups."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message, MessageGenerationStopped

from bot.admins import AdminChecker
from bot.conversation import ConversationService
from bot.keys import ConversationKey
from bot.texts import text
from handlers.context import (
    conversation_key,
    is_private,
    language,
    sender_administers,
    user_id,
)
from handlers.filters import inline

# callback_data of the Stop button on a streaming group answer
STOP_BUTTON = "stop"


async def on_start(message: Message) -> None:
    lang = language(message)
    await message.answer(f"{text('start', lang)}\n\n{text('help', lang)}")


async def on_help(message: Message) -> None:
    await message.answer(text("help", language(message)))


async def on_reset(
    message: Message, conversation: ConversationService, admins: AdminChecker
) -> None:
    lang = language(message)
    # A group's history is shared: only its admins may wipe it.
    if not await sender_administers(message, admins):
        await message.reply(text("admins_only", lang))
        return
    await conversation.reset(conversation_key(message))
    await message.reply(text("reset_done", lang))


async def on_stop(
    message: Message, conversation: ConversationService, admins: AdminChecker
) -> None:
    key = conversation_key(message)
    lang = language(message)
    asker = conversation.asker(key)
    if asker is None and not conversation.is_answering(key):
        await message.reply(text("nothing_to_stop", lang))
        return
    if asker != user_id(message) and not await sender_administers(message, admins):
        await message.reply(text("stop_not_allowed", lang))
        return
    conversation.stop(key)


async def on_stop_button(
    query: CallbackQuery, conversation: ConversationService, admins: AdminChecker
) -> None:
    """The Stop button under a streaming group answer."""
    lang = query.from_user.language_code
    message = query.message
    if not isinstance(message, Message):  # too old for Telegram to send it back
        await query.answer()
        return
    key = conversation_key(message)
    allowed = conversation.asker(key) == query.from_user.id or await admins.may_administer(
        message.chat.id, query.from_user.id, is_private=is_private(message)
    )
    if not allowed:
        await query.answer(text("stop_not_allowed", lang), show_alert=True)
        return
    stopped = conversation.stop(key)
    await query.answer(text("stopping" if stopped else "nothing_to_stop", lang))


async def on_draft_stopped(
    event: MessageGenerationStopped, conversation: ConversationService
) -> None:
    """The Stop button of a private-chat draft; only the chat's own user can press it."""
    conversation.stop(ConversationKey(event.chat.id, event.message_thread_id))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_reset, Command("reset"))
    router.message.register(on_stop, Command("stop"))
    router.callback_query.register(on_stop_button, inline(F.data == STOP_BUTTON))
    router.stopped_message_generation.register(on_draft_stopped)
    return router
