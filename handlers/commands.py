"""/start, /help, /reset and /stop, in private chats and groups."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message, MessageGenerationStopped

from bot.guards.admins import AdminChecker
from bot.history import HistoryStore
from bot.stopping import StopOutcome, Stopper, anyone
from bot.storage.keys import ConversationKey
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import (
    conversation_key,
    is_private,
    language,
    reply,
    sender_administers,
    user_id,
)
from handlers.filters import inline
from handlers.registry import help_lines

# callback_data of the Stop button on a streaming group answer
STOP_BUTTON = "stop"


def help_text(language: str | None, *, private: bool, bot_username: str) -> str:
    """/help: the commands of the registry that work here, and in a group how to ask."""
    everyone, admins = help_lines(language, private=private)
    paragraphs = [] if private else [text("help_group", language, bot=bot_username)]
    paragraphs.append("\n".join([text("help_commands", language), *everyone]))
    if admins:
        paragraphs.append("\n".join([text("help_admins", language), *admins]))
    if private:
        paragraphs.append(text("help_private_groups", language, bot=bot_username))
    return "\n\n".join(paragraphs)


async def _help(message: Message, bot: Bot) -> str:
    me = await bot.me()
    return help_text(language(message), private=is_private(message), bot_username=me.username or "")


async def on_start(message: Message, bot: Bot, delivery: StreamDelivery) -> None:
    greeting = text("start" if is_private(message) else "start_group", language(message))
    await reply(message, delivery, f"{greeting}\n\n{await _help(message, bot)}")


async def on_help(message: Message, bot: Bot, delivery: StreamDelivery) -> None:
    await reply(message, delivery, await _help(message, bot))


async def on_reset(
    message: Message,
    store: HistoryStore,
    admins: AdminChecker,
    delivery: StreamDelivery,
) -> None:
    lang = language(message)
    # A group's history is shared: only its admins may wipe it.
    if not await sender_administers(message, admins):
        await reply(message, delivery, text("admins_only", lang))
        return
    # the persona stays
    await store.clear(conversation_key(message))
    await reply(message, delivery, text("reset_done", lang))


async def on_stop(
    message: Message, stopper: Stopper, admins: AdminChecker, delivery: StreamDelivery
) -> None:
    """The stopped answer says so itself; only a refusal gets a reply."""
    lang = language(message)
    outcome = await stopper.stop(
        conversation_key(message),
        by=user_id(message),
        may_administer=lambda: sender_administers(message, admins),
    )
    if outcome is StopOutcome.NOTHING:
        await reply(message, delivery, text("nothing_to_stop", lang))
    elif outcome is StopOutcome.NOT_ALLOWED:
        await reply(message, delivery, text("stop_not_allowed", lang))


async def on_stop_button(query: CallbackQuery, stopper: Stopper, admins: AdminChecker) -> None:
    """The Stop button under a streaming group answer."""
    lang = query.from_user.language_code
    message = query.message
    if not isinstance(message, Message):  # too old for Telegram to send it back
        await query.answer()
        return
    outcome = await stopper.stop(
        conversation_key(message),
        by=query.from_user.id,
        may_administer=lambda: admins.may_administer(
            message.chat.id, query.from_user.id, is_private=is_private(message)
        ),
    )
    if outcome is StopOutcome.NOT_ALLOWED:
        await query.answer(text("stop_not_allowed", lang), show_alert=True)
        return
    stopped = outcome is StopOutcome.STOPPED
    await query.answer(text("stopping" if stopped else "nothing_to_stop", lang))


async def on_draft_stopped(event: MessageGenerationStopped, stopper: Stopper) -> None:
    """The Stop button of a private-chat draft; only the chat's own user can press it."""
    key = ConversationKey(event.chat.id, event.message_thread_id)
    await stopper.stop(key, by=event.chat.id, may_administer=anyone())


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_reset, Command("reset"))
    router.message.register(on_stop, Command("stop"))
    router.callback_query.register(on_stop_button, inline(F.data == STOP_BUTTON))
    router.stopped_message_generation.register(on_draft_stopped)
    return router
