"""Building the GLM `messages` list of one turn within a token budget."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from bot.history import StoredMessage
from bot.tokens import (
    MAX_TOKENS_PER_CHAR,
    MESSAGE_OVERHEAD,
    fitting_prefix_length,
    message_tokens,
)

__all__ = ["MIN_PROMPT_BUDGET", "Prompt", "build_prompt", "truncate_to_tokens"]

# The smallest budget that still fits a user message of at least one character.
MIN_PROMPT_BUDGET = MESSAGE_OVERHEAD + MAX_TOKENS_PER_CHAR

# Characters that attach to the one before (joiners, variation selectors, combining
# marks, skin tones): cutting before them would leave a broken emoji or a bare letter.
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request ready for GLM and what had to be cut to fit the budget."""

    # optional system first, then history, then the new user message last
    messages: list[dict[str, str]]
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


def build_prompt(
    *,
    persona: str | None,
    persona_tokens: int,
    history: Sequence[StoredMessage],
    user: StoredMessage,
    budget_tokens: int,
) -> Prompt:
    """The messages for one turn within `budget_tokens` estimated tokens.

    `budget_tokens` is the context window minus the answer's max tokens. The new user
    message is always kept and last, cut if it does not fit next to the persona; the
    persona is cut only when it takes more than half the budget next to it. History is
    added newest first while it fits, and a leading assistant message is dropped so the
    history starts with a user turn. Token counts are the given ones (`persona_tokens`,
    `StoredMessage.tokens`), recomputed only for cut texts.

    Raises ValueError if `budget_tokens` < MIN_PROMPT_BUDGET or `user` is not a user
    message.
    """
    if budget_tokens < MIN_PROMPT_BUDGET:
        raise ValueError(f"a prompt budget of {budget_tokens} tokens cannot hold a message")
    if user.role != "user":
        raise ValueError("the new message must have role 'user'")

    persona_text = persona or ""
    persona_cost = persona_tokens if persona_text else 0
    user_text, user_cost = user.content, user.tokens

    if persona_cost + user_cost > budget_tokens:
        half = budget_tokens // 2
        if persona_cost > half or budget_tokens - persona_cost < MIN_PROMPT_BUDGET:
            # cut only what the user message needs, never below half the budget, and
            # always leave room for at least one character of the user's text
            limit = min(max(half, budget_tokens - user_cost), budget_tokens - MIN_PROMPT_BUDGET)
            persona_text, persona_cost = _fit(persona_text, limit)
        if persona_cost + user_cost > budget_tokens:
            user_text, user_cost = _fit(user_text, budget_tokens - persona_cost)

    room = budget_tokens - persona_cost - user_cost
    start = len(history)
    while start > 0 and history[start - 1].tokens <= room:
        start -= 1
        room -= history[start].tokens
    # GLM expects the conversation to open with a user turn after the system prompt
    while start < len(history) and history[start].role == "assistant":
        start += 1
    kept = history[start:]

    messages: list[dict[str, str]] = []
    if persona_text:
        messages.append({"role": "system", "content": persona_text})
    messages.extend({"role": m.role, "content": m.content} for m in kept)
    messages.append({"role": "user", "content": user_text})
    return Prompt(
        messages=messages,
        estimated_tokens=persona_cost + sum(m.tokens for m in kept) + user_cost,
        user_truncated=user_text != user.content,
        dropped_messages=start,
        persona_truncated=persona_text != (persona or ""),
    )
