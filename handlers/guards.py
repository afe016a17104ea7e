"""Who gets through to GLM: the access policy for every message from a person, then
rate limits and daily token quotas for the messages that would be answered.

An inner middleware on the people router: it runs once aiogram has chosen the handler,
so it knows from the handler's `GLM` flag whether the message is headed for GLM, and
how it is addressed. Unaddressed group messages, /help and the like are never counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject
from aiogram.types import Message, TelegramObject

from bot.access import AccessPolicy
from bot.quotas import QuotaService
from bot.quotas.report import describe_refusal
from bot.sanitize import clean_text, is_blank
from bot.texts import text
from handlers.addressing import replies_to_bot, strip_mentions
from handlers.context import is_private, language, user_id
from handlers.flags import GLM, Addressing

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class GuardMiddleware(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Message):
            return await handler(event, data)
        access: AccessPolicy = data["access"]
        quotas: QuotaService = data["quotas"]
        addressing: Addressing | None = get_flag(data, GLM)
        who, chat = user_id(event), event.chat.id

        if not access.allows(who, chat):
            # Strangers cost nothing: no answer, no history; told once, if they asked us.
            addressed = await _addressed(event, addressing, data["bot"])
            told = addressed and await access.should_tell(who, chat)
            if told:
                lang = language(event)
                await _say(event, text("access_denied", lang, user_id=str(who), chat_id=str(chat)))
            log.debug("access: refused user %s in chat %s (told: %s)", who, chat, told)
            return None

        if addressing is None:
            return await handler(event, data)
        if not await _asks_glm(event, addressing, data):
            return await handler(event, data)  # the handler replies or records instead
        refusal = await quotas.admit(who, chat)
        if refusal is not None:
            if refusal.notify:
                await _say(event, describe_refusal(refusal, language(event)))
            log.debug(
                "limits: %s refused user %s in chat %s (told: %s)",
                refusal.reason.value,
                who,
                chat,
                refusal.notify,
            )
            return None
        return await handler(event, data)


async def _addressed(message: Message, addressing: Addressing | None, bot: Bot) -> bool:
    """Whether the person spoke to the bot (and so deserves to hear why it stays silent)."""
    if is_private(message) or addressing != "mention":
        return True  # a private chat, or a command aiogram already matched to this bot
    me = await bot.me()
    _, mentioned = strip_mentions(message, me)
    return mentioned or replies_to_bot(message, me)


async def _asks_glm(message: Message, addressing: Addressing, data: dict[str, Any]) -> bool:
    """Whether the handler will send this message to GLM (its own checks, mirrored)."""
    if addressing == "private":
        question = clean_text(message.text or "").strip()
        return not is_blank(question) and not question.startswith("/")
    if addressing == "ask":
        command: CommandObject | None = data.get("command")
        return command is not None and not is_blank(clean_text(command.args or "").strip())
    bot: Bot = data["bot"]
    me = await bot.me()
    question, mentioned = strip_mentions(message, me)
    return (mentioned or replies_to_bot(message, me)) and not is_blank(question)


async def _say(message: Message, reply: str) -> None:
    try:
        if is_private(message):
            await message.answer(reply)
        else:
            await message.reply(reply)
    except TelegramAPIError as exc:
        log.warning("could not tell chat %s why it is not answered: %s", message.chat.id, exc)
