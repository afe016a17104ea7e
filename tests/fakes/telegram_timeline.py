"""Wall-clock moments of the fake Telegram, per update and per chat, for benchmarks.

Timestamps are ``time.time()``: the benchmark compares them with the fake GLM's, which
runs in another process, and only the wall clock is shared between processes.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Calls that put text in front of the user: a message, an edit, a draft preview.
_SHOWING = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})


@dataclass(slots=True)
class ChatTimes:
    calls: Counter[str] = field(default_factory=Counter)
    refused_429: int = 0
    first_visible_at: float | None = None  # first sendMessage or non-empty draft
    last_shown_at: float | None = None  # last successful sendMessage or edit

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": sum(self.calls.values()),
            "calls_by_method": dict(self.calls),
            "refused_429": self.refused_429,
            "first_visible_at": self.first_visible_at,
            "last_shown_at": self.last_shown_at,
        }


class Timeline:
    """When each update was pushed and first handed out, and each chat's visible moments."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.updates: dict[int, dict[str, Any]] = {}
        self.chats: dict[int, ChatTimes] = {}

    def _chat(self, chat_id: int) -> ChatTimes:
        times = self.chats.get(chat_id)
        if times is None:
            times = self.chats[chat_id] = ChatTimes()
        return times

    def pushed(self, update_id: int, update: dict[str, Any]) -> None:
        chat_id = None
        for value in update.values():
            chat = value.get("chat") if isinstance(value, dict) else None
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                chat_id = chat["id"]
                break
        self.updates[update_id] = {"chat_id": chat_id, "pushed_at": time.time()}

    def delivered(self, batch: list[dict[str, Any]]) -> None:
        """A getUpdates answer is about to leave; an update counts from its first delivery."""
        now = time.time()
        for update in batch:
            entry = self.updates.get(update.get("update_id", -1))
            if entry is not None:
                entry.setdefault("delivered_at", now)

    def arrived(self, method: str, chat_id: Any) -> None:
        if isinstance(chat_id, int):
            self._chat(chat_id).calls[method] += 1

    def refused(self, chat_id: int) -> None:
        self._chat(chat_id).refused_429 += 1

    def shown(self, method: str, chat_id: int, *, text: str = "") -> None:
        """A call that changed what the chat shows succeeded."""
        now = time.time()
        times = self._chat(chat_id)
        if method in _SHOWING:
            times.last_shown_at = now
            if method == "sendMessage" and times.first_visible_at is None:
                times.first_visible_at = now
        elif method == "sendMessageDraft" and text and times.first_visible_at is None:
            times.first_visible_at = now
