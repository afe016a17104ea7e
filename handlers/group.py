"""Group chats: answer when addressed (@mention, reply to the bot, /ask), otherwise
stay silent and, if the group listens, keep the message as context."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.config import Settings
from bot.history import HistoryStore
from bot.messages import Message as StoredMessage
from bot.messages import TextPart
from bot.preferences import Preferences
from bot.sanitize import clean_text, is_blank
from bot.streaming import StreamDelivery
from bot.texts import text
from bot.turns.queue import TurnQueue
from bot.turns.types import Turn
from handlers.addressing import ask_question, group_question
from handlers.context import conversation_key, language, reply, speaker, user_id, user_name
from handlers.images import FileTooLarge, replied_image


async def on_ask(
    message: Message,
    question: str,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    if not question:
        await reply(message, delivery, text("empty_ask", language(message)))
        return
    await _answer(message, question, turns, delivery)


async def on_group_text(
    message: Message,
    question: str,
    addressed: bool,
    bot: Bot,
    turns: TurnQueue,
    delivery: StreamDelivery,
    store: HistoryStore,
    settings: Settings,
) -> None:
    if addressed:
        if not question:
            me = await bot.me()
            hint = text("empty_mention", language(message), bot=me.username or "")
            await reply(message, delivery, hint)
            return
        await _answer(message, question, turns, delivery)
        return
    said = clean_text(message.text or "").strip()
    if is_blank(said) or said.startswith("/"):
        return  # commands for other bots are not conversation
    listen = Preferences.parse(await store.get_preferences(message.chat.id)).listen
    if listen if listen is not None else settings.groups.listen:
        # kept as context, not answered
        kept = StoredMessage.of_text("user", f"{speaker(message)}: {said}")
        await store.append(conversation_key(message), [kept])


async def _answer(
    message: Message,
    question: str,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    try:
        # a question in reply to a photo (/ask, a mention) is about that photo
        images = replied_image(message)
    except FileTooLarge:
        await reply(message, delivery, text("file_too_large", language(message)))
        return
    key = conversation_key(message)
    turn = Turn(
        key=key,
        parts=(*images, TextPart(question)),
        user_id=user_id(message),
        speaker=speaker(message),
        language=language(message),
        user_name=user_name(message),
    )
    writer = delivery.writer(
        chat_id=key.chat_id,
        is_private=False,
        thread_id=key.thread_id,
        reply_to_message_id=message.message_id,
        stop_button=True,
    )
    # returns as soon as the answer is under way: the update and aiogram's handling
    # of it are not kept alive for as long as the answer streams
    await turns.submit(turn, writer)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filters decide what the question is (`handlers.addressing`)
    router.message.register(on_ask, Command("ask"), ask_question)
    router.message.register(on_group_text, group_question)
    return router
