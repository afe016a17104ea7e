"""The command menus Telegram shows, made from the registry (`handlers.registry`).

Three scopes: private chats, group members, group admins (who also see the admin
commands); each in English (the default) and Chinese.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeUnion,
)

from handlers.registry import commands_for

log = logging.getLogger(__name__)

# Telegram's language_code of each menu; "" is the menu for every other language.
MENU_LANGUAGES = {"": "en", "zh": "zh"}


def menu(language: str, *, private: bool, administers: bool) -> list[BotCommand]:
    return [
        BotCommand(command=c.name, description=c.describe(language, administers=administers))
        for c in commands_for(private=private, administers=administers)
        if c.in_menu
    ]


def menus(language: str) -> list[tuple[BotCommandScopeUnion, list[BotCommand]]]:
    """Each scope with its menu, in `language`."""
    return [
        (BotCommandScopeAllPrivateChats(), menu(language, private=True, administers=True)),
        (BotCommandScopeAllGroupChats(), menu(language, private=False, administers=False)),
        (
            BotCommandScopeAllChatAdministrators(),
            menu(language, private=False, administers=True),
        ),
    ]


async def register_commands(bot: Bot) -> None:
    """Best effort: a bot whose menu could not be set still works."""
    try:
        for code, language in MENU_LANGUAGES.items():
            for scope, commands in menus(language):
                await bot.set_my_commands(commands, scope=scope, language_code=code or None)
    except TelegramAPIError as exc:
        log.warning("could not register the command menus: %s", exc)
