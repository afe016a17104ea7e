"""Delivering a growing answer to Telegram: drafts in private chats, edits elsewhere.

The conversation core hands a writer the whole answer so far (``update``) as often as it
likes; a background task per answer delivers the latest text at a pace Telegram
tolerates, and ``finish`` delivers the final text completely. Pieces:

- ``bot.streaming.formatting``: Markdown to text + entities, cut at 4,000 UTF-16 units;
- ``bot.streaming.parts``: a growing answer cut into messages that never change once full;
- ``bot.streaming.ratelimit``: the bot-wide budgets every message and edit waits for;
- ``bot.streaming.chain``: the messages of one answer, Telegram's refusals and retries;
- ``bot.streaming.writer`` (EditWriter, the edit cadence) and ``bot.streaming.draft``.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot.streaming.chain import STOP_CALLBACK, MessageChain, Stats, Target
from bot.streaming.draft import DraftWriter
from bot.streaming.formatting import Rendered, plain_parts
from bot.streaming.outlet import Outlet
from bot.streaming.ratelimit import TelegramRateLimiter
from bot.streaming.writer import EditWriter
from bot.turns.types import AnswerWriter as CoreAnswerWriter

log = logging.getLogger(__name__)

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

    async def reply(
        self,
        chat_id: int,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> bool:
        """Send a short plain-text message (a command's reply, a refusal, a hint).

        The same road as an answer's final message: the flood limiter, 429s waited out,
        network errors retried, sent without the reply when the replied-to message is gone,
        split where Telegram's length limit requires. False (logged) when it could not be
        sent, e.g. the bot was removed from the chat.
        """
        chain = MessageChain(self.bot, self.limiter, Target(chat_id, thread_id, reply_to), Stats())
        try:
            return await chain.show([Rendered(part, []) for part in plain_parts(text)], final=True)
        except TelegramAPIError as exc:
            log.warning("could not send a reply in chat %s: %s", chat_id, exc)
            return False
