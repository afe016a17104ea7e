"""/search <question>: one question answered with GLM's web search, the sources listed as
numbered links at the end (`bot.turns.sources`). Private chats and groups alike; in a
group it is addressed like /ask. /websearch makes every question of a chat search."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.messages import TextPart
from bot.models import ModelCatalog
from bot.streaming import StreamDelivery
from bot.texts import text
from bot.turns.queue import TurnQueue
from bot.turns.types import Turn
from handlers.addressing import ask_question
from handlers.context import conversation_key, is_private, language, reply, speaker, user_id


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
    key = conversation_key(message)
    private = is_private(message)
    turn = Turn(
        key=key,
        parts=(TextPart(question),),
        user_id=user_id(message),
        speaker=None if private else speaker(message),
        language=lang,
        search=True,
    )
    writer = delivery.writer(
        chat_id=key.chat_id,
        is_private=private,
        thread_id=key.thread_id,
        reply_to_message_id=None if private else message.message_id,
        stop_button=not private,
    )
    # returns as soon as the answer is under way (see `handlers.chat`)
    await turns.submit(turn, writer)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filter puts the question in handler data, where the guards read it too
    router.message.register(on_search, Command("search"), ask_question)
    return router
