"""Who the bot is in a chat: persona rules (length, presets, defaults).

Who may change a persona is decided by `bot.guards.admins`; this module only keeps the rules
of what a persona may be and where it is stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import PersonaPreset
from bot.history import HistoryStore, Persona
from bot.prompt.tokens import message_tokens
from bot.sanitize import clean_text, is_blank
from bot.storage.keys import ConversationKey


class PersonaRejected(Exception):
    """The persona was not stored; `reason` is "too_long", "empty" or "unknown_preset"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EffectivePersona:
    text: str
    # None: the deployment's default from settings.toml is in force
    stored: Persona | None


class PersonaService:
    def __init__(
        self,
        store: HistoryStore,
        *,
        default: str,
        max_length: int,
        presets: Mapping[str, PersonaPreset],
    ) -> None:
        self._store = store
        self.default = default
        self.max_length = max_length
        self._presets = {name.lower(): preset for name, preset in presets.items()}

    async def current(self, key: ConversationKey) -> EffectivePersona:
        """The persona in force here: the topic's, else the chat's, else the default."""
        stored = await self._store.get_persona(key)
        return EffectivePersona(stored.text if stored else self.default, stored)

    async def set(self, key: ConversationKey, text: str, *, set_by: str) -> Persona:
        text = clean_text(text).strip()
        if is_blank(text):
            raise PersonaRejected("empty")
        if len(text) > self.max_length:
            raise PersonaRejected("too_long")
        return await self._save(key, text, set_by, preset=None)

    async def use(self, key: ConversationKey, name: str, *, set_by: str) -> Persona:
        preset = self._presets.get(name.lower())
        if preset is None:
            raise PersonaRejected("unknown_preset")
        return await self._save(key, preset.text, set_by, preset=name.lower())

    async def reset(self, key: ConversationKey) -> None:
        """Back to the deployment's default (for a topic: back to the group's persona)."""
        await self._store.set_persona(key, None)

    def presets(self) -> list[tuple[str, str]]:
        return [(name, preset.description) for name, preset in sorted(self._presets.items())]

    async def _save(
        self, key: ConversationKey, text: str, set_by: str, *, preset: str | None
    ) -> Persona:
        persona = Persona(
            text=text,
            tokens=message_tokens(text),
            set_by=set_by,
            set_at=time.time(),
            preset=preset,
        )
        await self._store.set_persona(key, persona)
        return persona
