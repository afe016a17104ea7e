"""Building the GLM `messages` list of one turn within a token budget."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.messages import ImagePart, Message, TextPart
from bot.prompt.tokens import (
    IMAGE_TOKENS,
    MAX_TOKENS_PER_CHAR,
    MESSAGE_OVERHEAD,
    fitting_prefix_length,
    message_tokens,
)

__all__ = [
    "IMAGE_GONE",
    "MIN_PROMPT_BUDGET",
    "Prompt",
    "attachable_images",
    "build_prompt",
    "request_message",
    "truncate_to_tokens",
]

# The smallest budget that still fits a user message of at least one character.
MIN_PROMPT_BUDGET = MESSAGE_OVERHEAD + MAX_TOKENS_PER_CHAR

# Stands in for the images of a message when none of them can be sent: GLM takes no
# empty content, and the model should know something was there.
IMAGE_GONE = "[an image that is no longer available]"

# Characters that attach to the one before (joiners, variation selectors, combining
# marks, skin tones): cutting before them would leave a broken emoji or a bare letter.
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request ready for GLM and what had to be cut to fit the budget."""

    # optional system first, then history, then the new user message last
    messages: list[dict[str, Any]]
    estimated_tokens: int
    # the new message alone did not fit and was cut
    user_truncated: bool
    # history messages left out (beyond what the store already left out)
    dropped_messages: int
    # the persona took more than half the budget next to the new message and was cut
    persona_truncated: bool = False


def _attaches(ch: str) -> bool:
    return ch in _JOINERS or unicodedata.combining(ch) != 0 or 0x1F3FB <= ord(ch) <= 0x1F3FF


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` estimated at most `max_tokens` (the text itself if it
    fits). Cuts between characters, never before a combining mark or emoji joiner."""
    cut = fitting_prefix_length(text, max_tokens)
    if cut == len(text):
        return text
    while cut > 0 and (_attaches(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    return text[:cut]


def _fit(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to `limit` message tokens, and its tokens (0 when nothing is left)."""
    cut = truncate_to_tokens(text, limit - MESSAGE_OVERHEAD)
    return cut, message_tokens(cut) if cut else 0


def _image_refs(message: Message) -> list[str]:
    return [part.ref for part in message.parts if isinstance(part, ImagePart)]


def attachable_images(history: Sequence[Message], user: Message, limit: int) -> list[str]:
    """The images worth fetching for a prompt: all of the new message's, then the newest
    `limit` of the history's (older ones go as text only)."""
    refs = _image_refs(user)
    earlier: list[str] = []
    for message in reversed(history):
        for ref in reversed(_image_refs(message)):
            if len(earlier) >= limit:
                return refs + earlier
            if ref not in earlier and ref not in refs:
                earlier.append(ref)
    return refs + earlier


def _cost(message: Message, images: Mapping[str, str]) -> int:
    """Estimated tokens of a message as sent: its text and the images that go with it."""
    return message.tokens + IMAGE_TOKENS * sum(ref in images for ref in _image_refs(message))


def request_message(message: Message, images: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A message as GLM takes it: a string for text alone, else a list of parts.

    `images` maps an image reference to its base64 data; an image without data (no
    longer fetchable, or beyond the images a prompt takes) is left out, and the turn
    goes on with the text.
    """
    if message.text_only:
        return {"role": message.role, "content": message.text}
    images = images or {}
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif part.ref in images:
            content.append({"type": "image_url", "image_url": {"url": images[part.ref]}})
    if all(item["type"] == "text" for item in content):
        # nothing to see (any more): plain text, never an empty list
        return {"role": message.role, "content": message.text or IMAGE_GONE}
    return {"role": message.role, "content": content}


def _with_text(message: Message, text: str, tokens: int) -> Message:
    """`message` with its text replaced by `text` (its images kept)."""
    images = tuple(part for part in message.parts if isinstance(part, ImagePart))
    return Message(message.role, (TextPart(text), *images), tokens)


def _fit_both(
    persona: str, persona_cost: int, user: str, user_cost: int, budget: int
) -> tuple[str, int, str, int]:
    """Persona and new message within `budget`: the persona is cut only when it takes
    more than half of it, the message only when it does not fit next to the persona."""
    if persona_cost + user_cost > budget:
        half = budget // 2
        if persona_cost > half or budget - persona_cost < MIN_PROMPT_BUDGET:
            # cut only what the user message needs, never below half the budget, and
            # always leave room for at least one character of the user's text
            limit = min(max(half, budget - user_cost), budget - MIN_PROMPT_BUDGET)
            persona, persona_cost = _fit(persona, limit)
        if persona_cost + user_cost > budget:
            user, user_cost = _fit(user, budget - persona_cost)
    return persona, persona_cost, user, user_cost


def _history_start(history: Sequence[Message], room: int, images: Mapping[str, str]) -> int:
    """Where the newest history that fits `room` starts."""
    start = len(history)
    while start > 0 and _cost(history[start - 1], images) <= room:
        start -= 1
        room -= _cost(history[start], images)
    # GLM expects the conversation to open with a user turn after the system prompt
    while start < len(history) and history[start].role == "assistant":
        start += 1
    return start


def build_prompt(
    *,
    persona: str | None,
    persona_tokens: int,
    history: Sequence[Message],
    user: Message,
    budget_tokens: int,
    images: Mapping[str, str] | None = None,
) -> Prompt:
    """The messages for one turn within `budget_tokens` estimated tokens.

    `budget_tokens` is the context window minus the answer's max tokens. The new user
    message is always kept and last, cut if it does not fit next to the persona; the
    persona is cut only when it takes more than half the budget next to it. History is
    added newest first while it fits, and a leading assistant message is dropped so the
    history starts with a user turn. Token counts are the given ones (`persona_tokens`,
    `Message.tokens`), recomputed only for cut texts; each image sent adds IMAGE_TOKENS.

    `images` maps image references to their base64 data: the images of the new message
    and of the kept history found there are sent (those of the new message first, as
    many as fit), the others are left out.

    Raises ValueError if `budget_tokens` < MIN_PROMPT_BUDGET or `user` is not a user
    message.
    """
    if budget_tokens < MIN_PROMPT_BUDGET:
        raise ValueError(f"a prompt budget of {budget_tokens} tokens cannot hold a message")
    if user.role != "user":
        raise ValueError("the new message must have role 'user'")

    images = _fitting_images(user, images or {}, budget_tokens)
    user_images = _cost(user, images) - user.tokens
    persona_text = persona or ""
    persona_cost = persona_tokens if persona_text else 0
    persona_text, persona_cost, user_text, user_cost = _fit_both(
        persona_text, persona_cost, user.text, user.tokens, budget_tokens - user_images
    )
    user_cost += user_images
    start = _history_start(history, budget_tokens - persona_cost - user_cost, images)
    kept = history[start:]

    messages: list[dict[str, Any]] = []
    if persona_text:
        messages.append({"role": "system", "content": persona_text})
    messages.extend(request_message(m, images) for m in kept)
    user_truncated = user_text != user.text
    if user_truncated:
        user = _with_text(user, user_text, user_cost - user_images)
    messages.append(request_message(user, images))
    return Prompt(
        messages=messages,
        estimated_tokens=persona_cost + sum(_cost(m, images) for m in kept) + user_cost,
        user_truncated=user_truncated,
        dropped_messages=start,
        persona_truncated=persona_text != (persona or ""),
    )


def _fitting_images(user: Message, images: Mapping[str, str], budget: int) -> Mapping[str, str]:
    """`images` less those of the new message beyond what the budget holds next to at
    least one character of its text (its first images are kept)."""
    room = max(0, (budget - MIN_PROMPT_BUDGET) // IMAGE_TOKENS)
    own = [ref for ref in _image_refs(user) if ref in images]
    if len(own) <= room:
        return images
    dropped = set(own[room:])
    return {ref: data for ref, data in images.items() if ref not in dropped}
