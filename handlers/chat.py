"""Text in a private chat: every message is a question for GLM."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.messages import TextPart
from bot.streaming import StreamDelivery
from bot.turns.queue import TurnQueue
from handlers.addressing import private_question
from handlers.context import ask, turn_of


async def on_private_text(
    message: Message,
    question: str,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    if not question:
        return  # an unknown command, or nothing visible
    await ask(message, turn_of(message, (TextPart(question),)), turns, delivery)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filter decides what the question is (`handlers.addressing`)
    router.message.register(on_private_text, private_question)
    return router
