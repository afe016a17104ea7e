"""A picture as the answer (/image): "sending a photo…" while it is drawn, then one
sendPhoto through the flood limiter. Notes (a refusal, a failure, a stop) go out as text
through the writer it wraps, exactly as an answer's notes do.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, ReplyParameters

from bot.streaming.chain import Stats, Target, described
from bot.streaming.delivery import StreamDelivery
from bot.streaming.formatting import utf16_len
from bot.streaming.outlet import Outlet
from bot.streaming.writer import Typing
from bot.turns.types import AnswerWriter

__all__ = ["CAPTION_LIMIT", "PhotoWriter", "caption_of", "photo_writer"]

log = logging.getLogger(__name__)

# Bot API: a photo's caption holds 0-1024 characters (counted, as text is, in UTF-16 units).
CAPTION_LIMIT = 1024
# How long a picture keeps trying through 429s and network errors before it gives up.
_SEND_TIMEOUT = 60.0


def caption_of(description: str, limit: int = CAPTION_LIMIT) -> str:
    """The description as a caption, cut with "…" to Telegram's limit."""
    if utf16_len(description) <= limit:
        return description
    units = description.encode("utf-16-le", "surrogatepass")[: (limit - 1) * 2]
    # "ignore": a surrogate pair cut in half is dropped, not sent broken
    return units.decode("utf-16-le", "ignore").rstrip() + "…"


class PhotoWriter:
    """An `AnswerWriter` for /image turns; also `bot.turns.pictures.PictureWriter`."""

    def __init__(self, text: AnswerWriter, outlet: Outlet, target: Target) -> None:
        self._text = text
        self._bot: Bot = outlet.bot
        self._outlet = outlet
        self._target = target
        self._stats = Stats()
        self._action = Typing(outlet, target, self._stats, action="upload_photo")

    @property
    def first_visible_at(self) -> float | None:
        return self._stats.first_visible_at or self._text.first_visible_at

    @property
    def api_calls(self) -> int:
        return self._stats.api_calls + self._text.api_calls

    async def begin(self) -> None:
        """Show "sending a photo…" until the picture or a note goes out."""
        self._action.start()

    def think(self, reasoning: str) -> None:
        """A picture has no reasoning to show."""

    def update(self, markdown: str) -> None:
        """A picture has no growing text."""

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        """A note instead of the picture (a refusal, a failure, a stop)."""
        await self._action.stop()
        await self._text.finish(markdown, footer=footer, reasoning=reasoning)

    async def picture(self, data: bytes, caption: str) -> bool:
        """Send the picture as a photo; False (logged) when Telegram would not take it."""
        await self._action.stop()
        reply = None
        if self._target.reply_to_message_id is not None:
            reply = ReplyParameters(
                message_id=self._target.reply_to_message_id, allow_sending_without_reply=True
            )
        photo = BufferedInputFile(data, filename="picture.png")
        deadline = time.monotonic() + _SEND_TIMEOUT
        failures = 0
        while True:
            pause = 0.0
            async with self._outlet.limiter.slot(self._target.chat_id, final=True):
                self._stats.api_calls += 1
                try:
                    await self._bot.send_photo(
                        chat_id=self._target.chat_id,
                        photo=photo,
                        caption=caption_of(caption) or None,
                        message_thread_id=self._target.thread_id,
                        reply_parameters=reply,
                    )
                    self._stats.visible()
                    return True
                except TelegramRetryAfter as exc:
                    self._outlet.limiter.penalize(self._target.chat_id, exc.retry_after)
                    pause = exc.retry_after
                except TelegramBadRequest as exc:
                    if reply is None or not described(exc, "message to be replied not found"):
                        log.warning("Telegram refused a picture in chat %s: %s", *self._at(exc))
                        return False
                    reply = None  # the /image message is gone: the picture still goes
                except (TelegramNetworkError, TelegramServerError) as exc:
                    failures += 1
                    pause = min(10.0, 0.5 * 2**failures)
                    log.warning("sending a picture failed (%s); retrying in %.1fs", exc, pause)
                except TelegramAPIError as exc:
                    log.warning("could not send a picture in chat %s: %s", *self._at(exc))
                    return False
            if time.monotonic() + pause > deadline:
                log.warning("gave up sending a picture in chat %s", self._target.chat_id)
                return False
            await asyncio.sleep(pause)  # outside the slot: it would block the chat

    async def aclose(self) -> None:
        await self._action.stop()
        await self._text.aclose()

    def _at(self, exc: Exception) -> tuple[int, Exception]:
        return self._target.chat_id, exc


def photo_writer(
    delivery: StreamDelivery,
    *,
    chat_id: int,
    is_private: bool,
    thread_id: int | None = None,
    reply_to_message_id: int | None = None,
) -> PhotoWriter:
    """The writer of an /image turn: the picture, or a note through the usual writer."""
    notes = delivery.writer(
        chat_id=chat_id,
        is_private=is_private,
        thread_id=thread_id,
        reply_to_message_id=reply_to_message_id,
    )
    return PhotoWriter(notes, delivery.outlet, Target(chat_id, thread_id, reply_to_message_id))
