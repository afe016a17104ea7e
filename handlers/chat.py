"""Text in a private chat: every message is a question for GLM."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.messages import TextPart
from bot.streaming import StreamDelivery
from bot.turns.queue import TurnQueue
from bot.turns.types import Turn
from handlers.addressing import private_question
from handlers.context import conversation_key, language, user_id, user_name


async def on_private_text(
    message: Message,
    question: str,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    if not question:
        return  # an unknown command, or nothing visible
    key = conversation_key(message)
    turn = Turn(
        key=key,
        parts=(TextPart(question),),
        user_id=user_id(message),
        language=language(message),
        user_name=user_name(message),
    )
    writer = delivery.writer(chat_id=key.chat_id, is_private=True, thread_id=key.thread_id)
    # returns as soon as the answer is under way: the update and aiogram's handling
    # of it are not kept alive for as long as the answer streams
    await turns.submit(turn, writer)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filter decides what the question is (`handlers.addressing`)
    router.message.register(on_private_text, private_question)
    return router
