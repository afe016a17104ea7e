"""Anything that is not text (stickers, photos, voice...): say what works."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import language, reply


async def on_unsupported(message: Message, delivery: StreamDelivery) -> None:
    await reply(message, delivery, text("unsupported", language(message)))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_unsupported)
    return router
