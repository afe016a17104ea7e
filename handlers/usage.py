"""/usage: a person's own tokens and estimated cost today and this month; the owners
also get the bot's totals, per model and the busiest chats (in private chats only, so
other chats' figures are never posted in a group)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.guards.admins import AdminChecker
from bot.guards.quotas import MeterUnavailable, QuotaService
from bot.guards.quotas.report import render_bot_report, render_user_report
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import is_private, language, reply, user_id


async def on_usage(
    message: Message, quotas: QuotaService, admins: AdminChecker, delivery: StreamDelivery
) -> None:
    lang = language(message)
    who = user_id(message)
    private = is_private(message)
    try:
        report = await quotas.user_report(who, None if private else message.chat.id)
        parts = [render_user_report(report, lang)]
        if admins.is_owner(who):
            if private:
                parts.append(render_bot_report(await quotas.bot_report(), lang))
            else:
                parts.append(text("usage_totals_private", lang))
    except MeterUnavailable:
        parts = [text("storage_unavailable", lang)]
    await reply(message, delivery, "\n\n".join(parts))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_usage, Command("usage"))
    return router
