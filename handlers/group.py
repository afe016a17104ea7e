"""Group chats: answer when addressed (@mention, reply to the bot, /ask), otherwise
stay silent and, if the group listens, keep the message as context."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.config import Settings
from bot.conversation import ConversationService, Turn
from bot.dedup import UpdateClaim
from bot.history import HistoryStore
from bot.sanitize import clean_text, is_blank
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.addressing import ask_question, group_question
from handlers.context import conversation_key, language, reply, speaker, user_id
from handlers.flags import GLM

LISTEN_FLAG = "listen"


async def on_ask(
    message: Message,
    question: str,
    conversation: ConversationService,
    delivery: StreamDelivery,
    update_claim: UpdateClaim | None = None,
) -> None:
    if not question:
        await reply(message, delivery, text("empty_ask", language(message)))
        return
    await _answer(message, question, conversation, delivery, update_claim)


async def on_group_text(
    message: Message,
    question: str,
    addressed: bool,
    bot: Bot,
    conversation: ConversationService,
    delivery: StreamDelivery,
    store: HistoryStore,
    settings: Settings,
    update_claim: UpdateClaim | None = None,
) -> None:
    if addressed:
        if not question:
            me = await bot.me()
            hint = text("empty_mention", language(message), bot=me.username or "")
            await reply(message, delivery, hint)
            return
        await _answer(message, question, conversation, delivery, update_claim)
        return
    said = clean_text(message.text or "").strip()
    if is_blank(said) or said.startswith("/"):
        return  # commands for other bots are not conversation
    listen = await store.get_chat_flag(message.chat.id, LISTEN_FLAG)
    if listen if listen is not None else settings.groups.listen:
        await conversation.record(conversation_key(message), speaker(message), said)


async def _answer(
    message: Message,
    question: str,
    conversation: ConversationService,
    delivery: StreamDelivery,
    claim: UpdateClaim | None,
) -> None:
    key = conversation_key(message)
    turn = Turn(
        key=key,
        text=question,
        user_id=user_id(message),
        speaker=speaker(message),
        language=language(message),
        claim=claim,
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
    await conversation.start(turn, writer)


def create_router() -> Router:
    router = Router(name=__name__)
    # the filters decide what the question is (`handlers.addressing`)
    router.message.register(on_ask, Command("ask"), ask_question, flags={GLM: "ask"})
    router.message.register(on_group_text, group_question, flags={GLM: "mention"})
    return router
