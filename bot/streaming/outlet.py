"""What every answer writer shares: the Bot, the flood limiter, the cadence, and whether
the Bot API server offers drafts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiogram import Bot

from bot.streaming.ratelimit import TelegramRateLimiter

__all__ = ["DRAFTS_RECHECK_SECONDS", "Outlet"]

# After the server said it does not know sendMessageDraft, private chats stream by edits
# for this long, then drafts are tried again: one stray 404 (a proxy restarting, say)
# must not turn them off for the life of the process.
DRAFTS_RECHECK_SECONDS = 600.0


@dataclass(eq=False, slots=True)
class Outlet:
    bot: Bot
    limiter: TelegramRateLimiter
    # seconds between two edits of a streaming message, and between two drafts
    edit_interval: float = 1.0
    draft_interval: float = 1.0
    clock: Callable[[], float] = field(default=time.monotonic)
    _drafts_off_until: float = 0.0

    @property
    def drafts_available(self) -> bool:
        return self.clock() >= self._drafts_off_until

    def drafts_unavailable(self) -> None:
        """The server refused a draft as an unknown method: edits for a while."""
        self._drafts_off_until = self.clock() + DRAFTS_RECHECK_SECONDS
