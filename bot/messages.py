"""What a conversation is made of: messages with a role and content parts.

A part is a piece of a message: text today, an image by reference next. A new kind of
content is one new part type here, its encoding in the history entry
(`bot.history.entries`) and its request form (`bot.prompt.build.request_message`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bot.prompt.tokens import message_tokens

__all__ = ["ImagePart", "Message", "Part", "Role", "TextPart", "text_of"]

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by reference (e.g. a Telegram file id): never the bytes, and never a
    Telegram file URL, which holds the bot token."""

    ref: str
    mime: str = "image/jpeg"


Part = TextPart | ImagePart


def text_of(parts: Iterable[Part]) -> str:
    """The text parts of a message, joined by blank lines."""
    return "\n\n".join(part.text for part in parts if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class Message:
    """One stored half of a turn; `tokens` is the estimate made when it was created."""

    role: Role
    parts: tuple[Part, ...]
    tokens: int

    @classmethod
    def of_text(cls, role: Role, text: str, tokens: int | None = None) -> Message:
        """A message of one text part, its tokens estimated unless given."""
        return cls(role, (TextPart(text),), message_tokens(text) if tokens is None else tokens)

    @property
    def text(self) -> str:
        return text_of(self.parts)

    @property
    def text_only(self) -> bool:
        return all(isinstance(part, TextPart) for part in self.parts)
