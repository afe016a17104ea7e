"""/image <description>: a picture drawn by the catalog's image model, in private chats
and groups (the command itself addresses the bot, as /ask does). It is queued as a turn
of the conversation (`bot.turns.pictures`); the guard middleware has admitted it against
the limits like a question."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.messages import TextPart
from bot.streaming import StreamDelivery
from bot.streaming.photos import photo_writer
from bot.texts import text
from bot.turns.queue import TurnQueue
from bot.turns.types import Turn
from handlers.addressing import ask_question
from handlers.context import conversation_key, is_private, language, reply, user_id, user_name


async def on_image(
    message: Message, question: str, turns: TurnQueue, delivery: StreamDelivery
) -> None:
    if not question:
        await reply(message, delivery, text("empty_image", language(message)))
        return
    key = conversation_key(message)
    private = is_private(message)
    turn = Turn(
        key=key,
        parts=(TextPart(question),),
        user_id=user_id(message),
        language=language(message),
        user_name=user_name(message),
        picture=True,
    )
    writer = photo_writer(
        delivery,
        chat_id=key.chat_id,
        is_private=private,
        thread_id=key.thread_id,
        # in a group the picture answers the /image message
        reply_to_message_id=None if private else message.message_id,
    )
    await turns.submit(turn, writer)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filter puts the description where the guard middleware reads the question
    router.message.register(on_image, Command("image"), ask_question)
    return router
