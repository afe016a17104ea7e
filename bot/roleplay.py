"""Role-play: the model a persona preset names, the character it plays, and the `meta`
Zhipu's role-play models (charglm, emohaa) require with every request.

A preset in settings.toml (`[personas.<name>]`, checked at start by `bot.config.models`)
may name a model; while that preset is the chat's persona (`/persona use <name>`), it
answers instead of the chat's own model. The user is described by their Telegram name,
never by their id: the description goes to Zhipu.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import PersonaPreset

__all__ = ["ANONYMOUS_USER", "Character", "characters", "meta"]

# The user's name when Telegram shows none.
ANONYMOUS_USER = "User"


@dataclass(frozen=True, slots=True)
class Character:
    """What a preset brings besides its text: the model that answers while it is in
    force and, for a role-play model, who that model plays."""

    model: str
    bot_name: str = ""
    bot_info: str = ""


def characters(presets: Mapping[str, PersonaPreset]) -> dict[str, Character]:
    """The presets that name a model, by the name a stored persona keeps (lower case)."""
    return {
        name.lower(): Character(preset.model, preset.bot_name.strip(), preset.bot_info.strip())
        for name, preset in presets.items()
        if preset.model is not None
    }


def meta(character: Character, user_name: str | None) -> dict[str, str]:
    """Zhipu's `meta`: the character, and the user by their Telegram name."""
    user = user_name or ANONYMOUS_USER
    return {
        "bot_name": character.bot_name,
        "bot_info": character.bot_info,
        "user_name": user,
        "user_info": f"{user}, talking with {character.bot_name} in a Telegram chat.",
    }
