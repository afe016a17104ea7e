"""What a conversation store holds and promises, independent of where it keeps it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, get_args

from bot.messages import Message, Role
from bot.storage.keys import ConversationKey

__all__ = [
    "ConversationContext",
    "HistoryStore",
    "HistoryUnavailable",
    "Message",
    "Persona",
    "Role",
]

_ROLES: frozenset[str] = frozenset(get_args(Role))


# The name is part of the agreed interface, hence no Error suffix.
class HistoryUnavailable(Exception):
    """The history storage cannot be reached right now; the turn cannot be served."""


@dataclass(frozen=True, slots=True)
class Persona:
    """A system prompt for a chat or topic, with who set it (display text) and when (unix time)."""

    text: str
    tokens: int
    set_by: str
    set_at: float
    preset: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationContext:
    """What one turn needs from storage: the effective persona and the newest history."""

    # the topic's own persona, else the chat's (thread None), else None
    persona: Persona | None
    # the newest stored messages whose tokens fit the budget, oldest first
    messages: list[Message]
    # older messages exist that did not fit
    truncated: bool
    # the chat's preferences as stored (`bot.preferences` reads them)
    preferences: Mapping[str, str] = field(default_factory=dict)


class HistoryStore(Protocol):
    """Conversation history, personas and per-chat preferences.

    Every method may raise `HistoryUnavailable` when the backing storage is unreachable.
    """

    async def load_context(self, key: ConversationKey, budget_tokens: int) -> ConversationContext:
        """The effective persona, the chat's preferences and the newest messages that fit
        `budget_tokens` with the persona, in one read."""
        ...

    async def append(self, key: ConversationKey, messages: Sequence[Message]) -> None:
        """Store all `messages` at the end, atomically, then trim to the store's maximum."""
        ...

    async def clear(self, key: ConversationKey) -> None:
        """Forget the conversation's history; its persona stays."""
        ...

    async def length(self, key: ConversationKey) -> int:
        """Number of stored messages."""
        ...

    async def get_persona(self, key: ConversationKey, *, inherit: bool = True) -> Persona | None:
        """This scope's persona; with `inherit`, a topic without one falls back to its chat's."""
        ...

    async def set_persona(self, key: ConversationKey, persona: Persona | None) -> None:
        """Replace this scope's persona; None deletes it."""
        ...

    async def get_preferences(self, chat_id: int) -> Mapping[str, str]:
        """The chat's stored preferences, by name (`bot.preferences` gives them types)."""
        ...

    async def set_preference(self, chat_id: int, name: str, value: str | None) -> None:
        """Store one preference of the chat; None removes it (back to the default)."""
        ...

    async def ping(self) -> bool:
        """True when the storage answers; never raises."""
        ...

    async def aclose(self) -> None:
        """Release what the store owns."""
        ...


def validate_messages(messages: Sequence[Message]) -> None:
    """Reject the whole batch before anything is written, so appends stay all-or-nothing."""
    for message in messages:
        if message.role not in _ROLES:
            raise ValueError(f"cannot store a message with role {message.role!r}")
        if not isinstance(message.parts, tuple) or not message.parts:
            raise TypeError("message parts must be a non-empty tuple")
        if message.tokens < 0:
            raise ValueError("message tokens must not be negative")


def validate_persona(persona: Persona) -> None:
    """Reject a persona the stores could not round-trip."""
    if persona.tokens < 0:
        raise ValueError("persona tokens must not be negative")


def newest_that_fit(
    newest_first: Iterable[Message], budget_tokens: int
) -> tuple[list[Message], bool]:
    """The longest run of newest messages within the budget (oldest first), and whether
    older ones were left out. Stops at the first message that does not fit: a gap in the
    middle of a conversation would confuse the model more than a shorter history."""
    kept: list[Message] = []
    used = 0
    for message in newest_first:
        if used + message.tokens > budget_tokens:
            kept.reverse()
            return kept, True
        used += message.tokens
        kept.append(message)
    kept.reverse()
    return kept, False
