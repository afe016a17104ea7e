"""How the model answers in this chat: /think, /effort, /reasoning and /websearch.

Each shows the chat's choice with no argument and sets it with one (private chat: its
user; group: those who may change the persona). A choice the chat's model cannot take is
explained and nothing changes. The next turn reads the preferences with its context
(`bot.turns.stream.options_for`), so a change applies from the next question on.

One command per choice, not one /settings menu: each is named after what it changes,
is answered in one line, and works the same way typed as /listen and /model do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.guards.admins import AdminChecker
from bot.models import ModelCatalog, ModelSpec
from bot.preferences import ChatPreferences, Preferences
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import language, reply, sender_administers

# GLM's `reasoning_effort` values (glm-5.2 on; see the reference's "Thinking").
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class Setting:
    """One chat preference as a command."""

    command: str
    # the `Preferences` field it sets
    field: str
    # the words it takes and the value each stores (None: back to the default); the first
    # word of a value is the one shown
    choices: Mapping[str, object]
    # the word shown while nothing is chosen
    default: str
    # None when the model can take the choice, else the text key that says why not
    unavailable: Callable[[ModelSpec], str | None]

    def word(self, preferences: Preferences) -> str:
        value = getattr(preferences, self.field)
        if value is None:
            return self.default
        return next((w for w, v in self.choices.items() if v == value), self.default)

    def state(self, preferences: Preferences, lang: str | None) -> str:
        word = self.word(preferences)
        shown = word if word in EFFORTS else text(f"{self.command}_{word}", lang)
        return text(f"{self.command}_state", lang, state=shown, levels="|".join(EFFORTS))


def _thinking(model: ModelSpec) -> str | None:
    return {"optional": None, "always": "think_always"}.get(
        model.capabilities.thinking, "think_never"
    )


SETTINGS: dict[str, Setting] = {
    setting.command: setting
    for setting in (
        Setting(
            "think",
            "thinking",
            {"on": True, "off": False, "auto": None},
            "auto",
            _thinking,
        ),
        Setting(
            "effort",
            "reasoning_effort",
            {**{level: level for level in EFFORTS}, "auto": None},
            "auto",
            lambda m: None if m.capabilities.reasoning_effort else "effort_unsupported",
        ),
        Setting(
            "reasoning",
            "show_reasoning",
            {"show": "folded", "hide": "hidden", "folded": "folded", "hidden": "hidden"},
            "show",
            # a display choice: kept for the thinking models the chat may switch to
            lambda m: None,
        ),
        Setting(
            "websearch",
            "web_search",
            {"on": True, "off": False},
            "off",
            lambda m: None if m.capabilities.web_search else "websearch_unsupported",
        ),
    )
}


async def on_setting(
    message: Message,
    command: CommandObject,
    models: ModelCatalog,
    preferences: ChatPreferences,
    admins: AdminChecker,
    delivery: StreamDelivery,
) -> None:
    setting = SETTINGS[command.command.lower()]
    lang = language(message)
    chat_id = message.chat.id
    current = await preferences.get(chat_id)
    model = models.for_chat(current.model)
    why_not = setting.unavailable(model)
    if why_not is not None:
        await reply(message, delivery, text(why_not, lang, model=model.name))
        return
    word = (command.args or "").strip().lower()
    if not word:
        await reply(message, delivery, setting.state(current, lang))
        return
    if word not in setting.choices:
        refusal = text("setting_unknown", lang, value=word[:32])
        await reply(message, delivery, f"{refusal}\n{setting.state(current, lang)}")
        return
    if not await sender_administers(message, admins):
        await reply(message, delivery, text("settings_admins_only", lang))
        return
    value: Any = setting.choices[word]  # of the field's type, by the table above
    await preferences.set(chat_id, setting.field, value)
    chosen = dataclasses.replace(current, **{setting.field: value})
    await reply(message, delivery, f"{text('setting_saved', lang)} {setting.state(chosen, lang)}")


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_setting, Command(*SETTINGS))
    return router
