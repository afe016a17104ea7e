"""An embedded history store for running without Redis (development, tests, one process).

Nothing survives a restart, the idle TTL is not implemented (conversations stay until
trimmed by `max_messages` or cleared) and memory grows with the number of conversations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.history.base import (
    ConversationContext,
    Persona,
    newest_that_fit,
    validate_messages,
    validate_persona,
)
from bot.messages import Message
from bot.storage.keys import ConversationKey

__all__ = ["MemoryHistoryStore"]


class MemoryHistoryStore:
    """`HistoryStore` in dicts. No method awaits, so each one is atomic on the event loop."""

    def __init__(self, *, max_messages: int = 2000) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._max_messages = max_messages
        self._messages: dict[ConversationKey, list[Message]] = {}
        self._personas: dict[ConversationKey, Persona] = {}
        self._preferences: dict[int, dict[str, str]] = {}

    def _persona(self, key: ConversationKey, inherit: bool) -> Persona | None:
        persona = self._personas.get(key)
        if persona is None and inherit and key.thread_id is not None:
            persona = self._personas.get(key.chat)
        return persona

    async def load_context(self, key: ConversationKey, budget_tokens: int) -> ConversationContext:
        """See `HistoryStore.load_context`."""
        persona = self._persona(key, inherit=True)
        if persona is not None:
            budget_tokens -= persona.tokens
        messages, truncated = newest_that_fit(reversed(self._messages.get(key, ())), budget_tokens)
        return ConversationContext(
            persona=persona,
            messages=messages,
            truncated=truncated,
            preferences=dict(self._preferences.get(key.chat_id, {})),
        )

    async def append(self, key: ConversationKey, messages: Sequence[Message]) -> None:
        """See `HistoryStore.append`."""
        validate_messages(messages)
        if not messages:
            return
        stored = self._messages.setdefault(key, [])
        stored.extend(messages)
        if len(stored) > self._max_messages:
            del stored[: len(stored) - self._max_messages]

    async def clear(self, key: ConversationKey) -> None:
        """See `HistoryStore.clear`."""
        self._messages.pop(key, None)

    async def length(self, key: ConversationKey) -> int:
        """See `HistoryStore.length`."""
        return len(self._messages.get(key, ()))

    async def get_persona(self, key: ConversationKey, *, inherit: bool = True) -> Persona | None:
        """See `HistoryStore.get_persona`."""
        return self._persona(key, inherit)

    async def set_persona(self, key: ConversationKey, persona: Persona | None) -> None:
        """See `HistoryStore.set_persona`."""
        if persona is None:
            self._personas.pop(key, None)
            return
        validate_persona(persona)
        self._personas[key] = persona

    async def get_preferences(self, chat_id: int) -> Mapping[str, str]:
        """See `HistoryStore.get_preferences`."""
        return dict(self._preferences.get(chat_id, {}))

    async def set_preference(self, chat_id: int, name: str, value: str | None) -> None:
        """See `HistoryStore.set_preference`."""
        chat = self._preferences.setdefault(chat_id, {})
        if value is None:
            chat.pop(name, None)
        else:
            chat[name] = value
        if not chat:
            del self._preferences[chat_id]

    async def ping(self) -> bool:
        """Always True: the store is this process."""
        return True

    async def aclose(self) -> None:
        """Nothing to release."""
