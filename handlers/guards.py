"""Who gets through to GLM: the access policy for every message from a person, then
rate limits and daily token quotas for the messages that would be answered.

An inner middleware on the people router: it runs once aiogram has chosen the handler
and its filters have run, so it reads what they decided (`handlers.addressing`): whether
the person spoke to the bot, and the question, if any, that goes to GLM. Unaddressed
group messages, /help and the like are never counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from bot.guards.access import AccessPolicy
from bot.guards.quotas import QuotaService
from bot.guards.quotas.report import describe_refusal
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.addressing import ADDRESSED, QUESTION
from handlers.context import language, reply, user_id

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class GuardMiddleware(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Message):
            return await handler(event, data)
        access: AccessPolicy = data["access"]
        quotas: QuotaService = data["quotas"]
        delivery: StreamDelivery = data["delivery"]
        who, chat = user_id(event), event.chat.id

        if not access.allows(who, chat):
            # Strangers cost nothing: no answer, no history; told once, if they asked us
            # (a private message or a command always speaks to the bot).
            addressed = data.get(ADDRESSED, True)
            told = addressed and await access.should_tell(who, chat)
            log.debug("access: refused user %s in chat %s (told: %s)", who, chat, told)
            if told:
                lang = language(event)
                denied = text("access_denied", lang, user_id=str(who), chat_id=str(chat))
                await reply(event, delivery, denied)
            return None

        if not data.get(QUESTION):
            return await handler(event, data)  # the handler replies or records instead
        refusal = await quotas.admit(who, chat)
        if refusal is not None:
            log.debug(
                "limits: %s refused user %s in chat %s (told: %s)",
                refusal.reason.value,
                who,
                chat,
                refusal.notify,
            )
            if refusal.notify:
                await reply(event, delivery, describe_refusal(refusal, language(event)))
            return None
        return await handler(event, data)
