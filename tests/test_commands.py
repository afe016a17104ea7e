"""The command registry: the README's table, /help and the menus all come from it, and
every text fits where Telegram shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.streaming.formatting import TELEGRAM_TEXT_LIMIT, utf16_len
from handlers.commands import help_text
from handlers.menu import MENU_LANGUAGES, menus
from handlers.registry import COMMANDS, readme_table
from tests.harness import running_bot

README = Path(__file__).resolve().parent.parent / "README.md"
# Telegram's limits on a BotCommand
COMMAND_DESCRIPTION_LIMIT = 256


def test_the_readme_table_is_the_registry() -> None:
    assert readme_table() in README.read_text(encoding="utf-8"), (
        "README.md's command table is out of step with handlers/registry.py: "
        "paste handlers.registry.readme_table() in its place"
    )


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("private", [True, False])
def test_help_lists_the_commands_that_work_there(language: str, private: bool) -> None:
    shown = help_text(language, private=private, bot_username="glm_test_bot")
    assert utf16_len(shown) <= TELEGRAM_TEXT_LIMIT
    for command in COMMANDS:
        listed = any(line.startswith(f"/{command.name} ") for line in shown.splitlines())
        assert listed == (command.in_menu and command.works_in(private=private)), command.name
    assert "@glm_test_bot" in shown, "how to ask in a group"
    assert "/ask" in shown


@pytest.mark.parametrize("language", sorted(MENU_LANGUAGES.values()))
def test_menu_descriptions_fit(language: str) -> None:
    for _, commands in menus(language):
        assert commands
        for command in commands:
            assert 1 <= len(command.description) <= COMMAND_DESCRIPTION_LIMIT


def test_group_members_do_not_see_the_admin_commands() -> None:
    private, members, admins = ([c.command for c in commands] for _, commands in menus("en"))
    assert not {"listen", "ask"} & set(private)
    assert not {"reset", "listen"} & set(members)
    assert {"reset", "listen", "ask", "persona"} <= set(admins)


async def test_the_menus_are_registered_per_scope_and_language(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        await h.tg.wait_for(lambda: len(h.tg.my_commands) == 6, what="6 menus")
        group = h.tg.commands_for({"type": "all_group_chats"})
        assert {"command": "ask", "description": "Ask me something"} in group
        zh_admins = h.tg.commands_for({"type": "all_chat_administrators"}, "zh")
        assert {"command": "reset", "description": "清空本对话（保留人设）"} in zh_admins
