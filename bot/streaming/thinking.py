"""A thinking model on Telegram: a sign of thinking while it reasons, then its reasoning
folded into an expandable quote above the answer.

Built as text and entities directly, not through Markdown: reasoning is the model's raw
notes, and a stray asterisk in them must not break the message.
"""

from __future__ import annotations

from aiogram.types import MessageEntity

from bot.streaming.formatting import TELEGRAM_TEXT_LIMIT, Rendered, utf16_len

__all__ = ["thinking_part", "with_reasoning"]

THINKING = "💭 Thinking…"
# The tail of the reasoning a draft shows while the model thinks: enough to see it move.
_SHOWN_WHILE_THINKING = 600
# Characters of reasoning one message can always hold (two UTF-16 units each at worst);
# the core shortens it well below this.
_MOST_FOLDED = TELEGRAM_TEXT_LIMIT // 2


def thinking_part(reasoning: str | None) -> Rendered:
    """The message shown while the model thinks: the sign alone, or with the latest of
    its reasoning in a quote (private drafts, which cost no message budget)."""
    if not reasoning or not reasoning.strip():
        return Rendered(
            THINKING, [MessageEntity(type="italic", offset=0, length=utf16_len(THINKING))]
        )
    tail = reasoning.strip()[-_SHOWN_WHILE_THINKING:]
    if len(reasoning.strip()) > _SHOWN_WHILE_THINKING:
        tail = "…" + tail
    text = f"{THINKING}\n{tail}"
    start = utf16_len(THINKING) + 1
    return Rendered(
        text,
        [
            MessageEntity(type="italic", offset=0, length=utf16_len(THINKING)),
            MessageEntity(type="blockquote", offset=start, length=utf16_len(tail)),
        ],
    )


def with_reasoning(parts: list[Rendered], reasoning: str | None) -> list[Rendered]:
    """The answer's messages with the reasoning folded above the first, in a message of
    its own if both do not fit in one."""
    if not reasoning or not reasoning.strip():
        return parts
    quote = reasoning.strip()[:_MOST_FOLDED]
    folded = Rendered(
        quote, [MessageEntity(type="expandable_blockquote", offset=0, length=utf16_len(quote))]
    )
    if utf16_len(quote) > TELEGRAM_TEXT_LIMIT:
        return [
            Rendered(quote[: TELEGRAM_TEXT_LIMIT // 2], []),
            *parts,
        ]  # not expected: cut upstream
    if not parts:
        return [folded]
    first = parts[0]
    text = f"{quote}\n\n{first.text}"
    if utf16_len(text) > TELEGRAM_TEXT_LIMIT:
        return [folded, *parts]
    shift = utf16_len(quote) + 2
    moved = [
        entity.model_copy(update={"offset": entity.offset + shift}) for entity in first.entities
    ]
    return [Rendered(text, [*folded.entities, *moved]), *parts[1:]]
