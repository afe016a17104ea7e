"""Per-chat preferences: one typed record per chat, stored as strings in the chat's
settings hash (`bot.history` keeps it, and reads it along with each turn's context).

A new per-chat option is one field here, with its default meaning in `Preferences`, and
one command that sets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from bot.history import HistoryStore

__all__ = ["ChatPreferences", "Preferences"]


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a chat chose; None everywhere means "the deployment's default"."""

    # record unaddressed group messages as context (groups only)
    listen: bool | None = None
    # the model that answers in this chat (a name from the model catalog)
    model: str | None = None
    # let a model that can think choose to (None: the model's own default)
    thinking: bool | None = None
    # how hard a model that takes `reasoning_effort` thinks ("low", "high"...)
    reasoning_effort: str | None = None
    # the reasoning above the answer: "folded" (an expandable quote, the default) or "hidden"
    show_reasoning: str | None = None
    # search the web for every question (a model with the web_search tool)
    web_search: bool | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> Preferences:
        """The stored strings as typed values; unknown names and unreadable values are
        ignored (a value written by a newer version, say)."""
        values: dict[str, Any] = {}
        for name, kind in _TYPES.items():
            if name in raw:
                value = _parse_value(kind, raw[name])
                if value is not None:
                    values[name] = value
        return cls(**values)


_TYPES: dict[str, Any] = {
    field.name: get_type_hints(Preferences)[field.name] for field in dataclasses.fields(Preferences)
}


def _parse_value(kind: Any, raw: str) -> object:
    if kind == bool | None:
        return {"1": True, "0": False}.get(raw)
    return raw or None


def _format_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class ChatPreferences:
    """Reads and changes the preferences of a chat."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    async def get(self, chat_id: int) -> Preferences:
        return Preferences.parse(await self._store.get_preferences(chat_id))

    async def set(self, chat_id: int, name: str, value: object) -> None:
        """Set one preference; None goes back to the default."""
        if name not in _TYPES:
            raise KeyError(name)
        await self._store.set_preference(chat_id, name, _format_value(value))
