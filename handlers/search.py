"""/search <question>: one question answered with GLM's web search, the sources listed as
numbered links at the end (`bot.turns.sources`). Private chats and groups alike; in a
group it is addressed like /ask. /websearch makes every question of a chat search."""

from __future__ import annotations

from dataclasses import replace

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.messages import TextPart
from bot.models import ModelCatalog
from bot.streaming import StreamDelivery
from bot.texts import text
from bot.turns.queue import TurnQueue
from handlers.addressing import ask_question
from handlers.context import (
    ask,
    language,
    reply,
    turn_of,
)


async def on_search(
    message: Message,
    question: str,
    models: ModelCatalog,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    lang = language(message)
    if not question:
        await reply(message, delivery, text("empty_search", lang))
        return
    # the turn borrows a searching model when the chat's cannot (`ModelCatalog.for_turn`);
    # with none in the catalog it would quietly answer without searching
    if not any(model.capabilities.web_search for model in models.chat_models()):
        await reply(message, delivery, text("search_unavailable", lang))
        return
    turn = replace(turn_of(message, (TextPart(question),)), search=True)
    await ask(message, turn, turns, delivery)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filter puts the question in handler data, where the guards read it too
    router.message.register(on_search, Command("search"), ask_question)
    return router
