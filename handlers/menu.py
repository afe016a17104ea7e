"""The command menus Telegram shows: admin commands to group admins, the rest to all."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
)

log = logging.getLogger(__name__)

_PRIVATE = [
    BotCommand(command="help", description="What I can do"),
    BotCommand(command="reset", description="Forget this conversation"),
    BotCommand(command="stop", description="Stop the current answer"),
    BotCommand(command="persona", description="Show or set my persona here"),
    BotCommand(command="model", description="Show or switch the model here"),
    BotCommand(command="usage", description="Your token usage"),
]
_GROUP = [
    BotCommand(command="ask", description="Ask me something"),
    BotCommand(command="stop", description="Stop your answer"),
    BotCommand(command="persona", description="Show my persona in this group"),
    BotCommand(command="model", description="Show the model in this group"),
    BotCommand(command="help", description="What I can do"),
    BotCommand(command="usage", description="Your token usage"),
]
_GROUP_ADMIN = [
    *_GROUP,
    BotCommand(command="reset", description="Forget this group's conversation"),
    BotCommand(command="listen", description="on|off: keep unaddressed messages as context"),
]


async def register_commands(bot: Bot) -> None:
    """Best effort: a bot whose menu could not be set still works."""
    try:
        await bot.set_my_commands(_PRIVATE, scope=BotCommandScopeAllPrivateChats())
        await bot.set_my_commands(_GROUP, scope=BotCommandScopeAllGroupChats())
        await bot.set_my_commands(_GROUP_ADMIN, scope=BotCommandScopeAllChatAdministrators())
    except TelegramAPIError as exc:
        log.warning("could not register the command menus: %s", exc)
