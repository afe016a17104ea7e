"""What a conversation store holds and promises, independent of where it keeps it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from bot.keys import ConversationKey
from bot.tokens import message_tokens

__all__ = [
    "ConversationContext",
    "HistoryStore",
    "HistoryUnavailable",
    "Persona",
    "Rider",
    "Role",
    "StoredMessage",
    "riding",
]

Role = Literal["user", "assistant"]
_ROLES: frozenset[str] = frozenset(get_args(Role))


# The name is part of the agreed interface, hence no Error suffix.
class HistoryUnavailable(Exception):
    """The history storage cannot be reached right now; the turn cannot be served."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored turn half; `tokens` is the estimate made when it was appended."""

    role: Role
    content: str
    tokens: int

    @classmethod
    def from_text(cls, role: Role, content: str) -> StoredMessage:
        """A message whose token count is `message_tokens(content)`, the usual choice."""
        return cls(role, content, message_tokens(content))


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
    messages: list[StoredMessage]
    # older messages exist that did not fit
    truncated: bool


class Rider(Protocol):
    """Another part's small Redis command (the journal of turns in progress, the claim of
    an update) that a store on Redis sends in the same round trip as its own script,
    instead of in one of its own.

    The store reports the outcome with `landed`: the command's reply, or an exception: an
    error reply, or the failure of the whole exchange (a write may then have been applied
    or not). A store without Redis never calls `landed`; the rider's owner then sees it
    unsent and sends it itself.
    """

    def command(self) -> tuple[str, ...]:
        """The Redis command and its arguments, e.g. ``("HDEL", key, field)``."""
        ...

    def landed(self, reply: object) -> None: ...


def riding(*riders: Rider | None) -> list[Rider]:
    """The riders that are there (their owners hand out None when nothing is to send)."""
    return [rider for rider in riders if rider is not None]


class HistoryStore(Protocol):
    """Conversation history, personas and per-chat flags.

    Every method may raise `HistoryUnavailable` when the backing storage is unreachable.
    """

    async def load_context(
        self, key: ConversationKey, budget_tokens: int, *, riders: Sequence[Rider] = ()
    ) -> ConversationContext:
        """The effective persona and the newest messages that fit `budget_tokens` with it;
        `riders` go along with the read, whether the read succeeds or not."""
        ...

    async def append(
        self,
        key: ConversationKey,
        messages: Sequence[StoredMessage],
        *,
        riders: Sequence[Rider] = (),
    ) -> None:
        """Store all `messages` at the end, atomically, then trim to the store's maximum;
        `riders` go along, whether the append succeeds or not."""
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

    async def get_chat_flag(self, chat_id: int, name: str) -> bool | None:
        """A per-chat boolean setting such as "listen"; None when never set."""
        ...

    async def set_chat_flag(self, chat_id: int, name: str, value: bool | None) -> None:
        """Set a per-chat boolean setting; None removes it (back to the default)."""
        ...

    async def ping(self) -> bool:
        """True when the storage answers; never raises."""
        ...

    async def aclose(self) -> None:
        """Release what the store owns."""
        ...


def validate_messages(messages: Sequence[StoredMessage]) -> None:
    """Reject the whole batch before anything is written, so appends stay all-or-nothing."""
    for message in messages:
        if message.role not in _ROLES:
            raise ValueError(f"cannot store a message with role {message.role!r}")
        if not isinstance(message.content, str):
            raise TypeError("message content must be str")
        if message.tokens < 0:
            raise ValueError("message tokens must not be negative")


def validate_persona(persona: Persona) -> None:
    """Reject a persona the stores could not round-trip."""
    if persona.tokens < 0:
        raise ValueError("persona tokens must not be negative")


def newest_that_fit(
    newest_first: Iterable[StoredMessage], budget_tokens: int
) -> tuple[list[StoredMessage], bool]:
    """The longest run of newest messages within the budget (oldest first), and whether
    older ones were left out. Stops at the first message that does not fit: a gap in the
    middle of a conversation would confuse the model more than a shorter history."""
    kept: list[StoredMessage] = []
    used = 0
    for message in newest_first:
        if used + message.tokens > budget_tokens:
            kept.reverse()
            return kept, True
        used += message.tokens
        kept.append(message)
    kept.reverse()
    return kept, False
