"""Delivering a growing answer to Telegram: drafts in private chats, edits elsewhere.

The conversation core hands a writer the whole answer so far (``update``) as often as it
likes; a background task per answer delivers the latest text at a pace Telegram
tolerates, and ``finish`` delivers the final text completely. Pieces:

- ``bot.formatting``: Markdown to text + entities, cut at 4,000 UTF-16 units;
- ``bot.streaming.parts``: a growing answer cut into messages that never change once full;
- ``bot.ratelimit``: the bot-wide budgets every message and edit waits for;
- ``bot.streaming.chain``: the messages of one answer, Telegram's refusals and retries;
- ``bot.streaming.writer`` (EditWriter, the edit cadence) and ``bot.streaming.draft``.
"""

from __future__ import annotations

from typing import Literal, Protocol

from aiogram import Bot

from bot.ratelimit import TelegramRateLimiter
from bot.streaming.chain import STOP_CALLBACK, Target
from bot.streaming.draft import DraftWriter
from bot.streaming.outlet import Outlet
from bot.streaming.writer import EditWriter
from bot.turns.types import AnswerWriter as CoreAnswerWriter

__all__ = [
    "STOP_CALLBACK",
    "AnswerWriter",
    "DraftWriter",
    "EditWriter",
    "StreamDelivery",
]


class AnswerWriter(CoreAnswerWriter, Protocol):
    """The core's writer port, plus what Telegram delivery reports about an answer."""

    @property
    def draft_id(self) -> int | None:
        """The draft's id (to match stopped_message_generation), None when editing."""

    @property
    def message_ids(self) -> list[int]:
        """The messages holding the answer so far."""


class StreamDelivery:
    """Creates the writer for each answer; one per bot process."""

    def __init__(
        self,
        bot: Bot,
        limiter: TelegramRateLimiter,
        *,
        private_method: Literal["draft", "edit"] = "draft",
        edit_interval: float = 1.0,
        draft_interval: float = 0.3,
    ) -> None:
        self.bot = bot
        self.limiter = limiter
        self.private_method = private_method
        self.outlet = Outlet(bot, limiter, edit_interval, draft_interval)

    def writer(
        self,
        *,
        chat_id: int,
        is_private: bool,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        stop_button: bool = False,
    ) -> AnswerWriter:
        """A DraftWriter for private chats (when drafts work), an EditWriter otherwise.

        ``stop_button`` puts an inline "⏹" button (callback_data "stop") under the
        message being streamed; the final edit removes it.
        """
        target = Target(chat_id, thread_id, reply_to_message_id, stop_button)
        if is_private and self.private_method == "draft" and self.outlet.drafts_available:
            return DraftWriter(self.outlet, target)
        return EditWriter(self.outlet, target)
