"""/listen on|off: whether a group's unaddressed messages are kept as context."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.config import Settings
from bot.guards.admins import AdminChecker
from bot.preferences import ChatPreferences
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import language, reply, sender_administers


async def on_listen(
    message: Message,
    command: CommandObject,
    admins: AdminChecker,
    preferences: ChatPreferences,
    settings: Settings,
    delivery: StreamDelivery,
) -> None:
    lang = language(message)
    arg = (command.args or "").strip().lower()
    if arg not in ("", "on", "off"):
        await reply(message, delivery, text("listen_usage", lang))
        return
    if not arg:
        current = (await preferences.get(message.chat.id)).listen
        listening = settings.groups.listen if current is None else current
        await reply(message, delivery, text("listen_on" if listening else "listen_off", lang))
        return
    if not await sender_administers(message, admins):
        await reply(message, delivery, text("admins_only", lang))
        return
    await preferences.set(message.chat.id, "listen", arg == "on")
    await reply(message, delivery, text("listen_on" if arg == "on" else "listen_off", lang))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_listen, Command("listen"))
    return router
