"""The messages that carry one answer: part i of the answer lives in message i.

Every Bot API call of a writer goes through here: it waits for the rate limiter, counts
the call, turns Telegram's harmless refusals into bookkeeping ("message is not modified",
a message deleted under us, entities refused) and retries what must land.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageEntity,
    ReplyParameters,
)

from bot.streaming.formatting import TELEGRAM_TEXT_LIMIT, Rendered, plain_parts, utf16_len
from bot.streaming.ratelimit import TelegramRateLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")

# The final answer is retried this long (429s, network, 5xx) before we give up and log.
FINAL_TIMEOUT = 300.0
STOP_CALLBACK = "stop"
# Link previews would pop in and out while the text grows.
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@dataclass(frozen=True, slots=True)
class Target:
    """Where an answer goes."""

    chat_id: int
    thread_id: int | None = None
    reply_to_message_id: int | None = None
    stop_button: bool = False


class Stats:
    """Counters shared by a writer and the writer it may hand over to."""

    def __init__(self) -> None:
        self.api_calls = 0
        self.first_visible_at: float | None = None

    def visible(self) -> None:
        if self.first_visible_at is None:
            self.first_visible_at = time.monotonic()


class StopStreamingError(Exception):
    """The writer is finishing: intermediate work ends at the next safe point."""


def described(exc: Exception, *needles: str) -> bool:
    """Whether a Telegram error's description contains any of ``needles`` (lowercase)."""
    message = str(getattr(exc, "message", exc)).lower()
    return any(needle in message for needle in needles)


def is_parse_error(exc: Exception) -> bool:
    return isinstance(exc, TelegramBadRequest) and described(exc, "can't parse entities")


def with_footer(parts: list[Rendered], footer: str | None) -> list[Rendered]:
    """Append the footer in italics on its own line, in a message of its own if needed."""
    if not footer or not footer.strip():
        return parts
    note = footer.strip()
    if parts:
        last = parts[-1]
        text = f"{last.text}\n\n{note}"
        if utf16_len(text) <= TELEGRAM_TEXT_LIMIT:
            italic = MessageEntity(
                type="italic", offset=utf16_len(last.text) + 2, length=utf16_len(note)
            )
            return [*parts[:-1], Rendered(text, [*last.entities, italic])]
    notes = [
        Rendered(p, [MessageEntity(type="italic", offset=0, length=utf16_len(p))])
        for p in plain_parts(note)
    ]
    return [*parts, *notes]


@dataclass(slots=True)
class _Message:
    message_id: int | None  # None once Telegram told us it is gone
    shown: tuple[str, list[MessageEntity], bool] | None = None


class MessageChain:
    """Sends and edits the messages of one answer so that they show the given parts."""

    def __init__(
        self, bot: Bot, limiter: TelegramRateLimiter, target: Target, stats: Stats
    ) -> None:
        self._bot = bot
        self._limiter = limiter
        self._target = target
        self._stats = stats
        self._messages: list[_Message] = []
        self._plain = False  # Telegram refused our entities once: plain text from then on
        # set by the writer when it finishes: intermediate calls stop at the next safe point
        self.stopping = False
        # a request is in flight: cancelling it could leave a sent message we never learn of
        self.in_call = False

    @property
    def message_ids(self) -> list[int]:
        return [m.message_id for m in self._messages if m.message_id is not None]

    def shows(self, parts: list[Rendered], *, final: bool) -> bool:
        """Whether the chat already shows exactly these parts."""
        if len(parts) != len(self._messages):
            return False
        return all(
            m.message_id is not None and m.shown == self._key(i, part, len(parts), final)
            for i, (m, part) in enumerate(zip(self._messages, parts, strict=True))
        )

    async def show(self, parts: list[Rendered], *, final: bool) -> bool:
        """Make message i show part i; False if an intermediate update hit a flood limit.

        Final: every part lands (each call retried until FINAL_TIMEOUT) and messages left
        over from a longer intermediate text are deleted.
        """
        for i, part in enumerate(parts):
            key = self._key(i, part, len(parts), final)
            if i < len(self._messages):
                message = self._messages[i]
                if message.message_id is not None and message.shown == key:
                    continue
            if not await self._put(i, part, key, final=final):
                return False
        if final:
            for message in self._messages[len(parts) :]:
                if message.message_id is not None:
                    await self._delete(message.message_id)
            del self._messages[len(parts) :]
        return True

    def _key(
        self, i: int, part: Rendered, count: int, final: bool
    ) -> tuple[str, list[MessageEntity], bool]:
        button = self._target.stop_button and not final and i == count - 1
        return part.text, part.entities, button

    async def _put(
        self, i: int, part: Rendered, key: tuple[str, list[MessageEntity], bool], *, final: bool
    ) -> bool:
        """Show `part` as message i: an edit when it exists, else a new message."""
        markup = (
            InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="⏹", callback_data=STOP_CALLBACK)]]
            )
            if key[2]
            else None
        )
        message = self._messages[i] if i < len(self._messages) else None
        if message is not None and message.message_id is not None:
            edited = await self._edit(message, part, markup, final=final)
            if edited is None:  # deleted under us: the rest goes on in a new message
                message.message_id = None
                return await self._put(i, part, key, final=final)
            if edited:
                message.shown = key
            return edited
        sent = await self._send(i, part, markup, final=final)
        if sent is None:
            return False
        new = _Message(getattr(sent, "message_id", None), key)
        if message is None:
            self._messages.append(new)
        else:
            self._messages[i] = new
        self._stats.visible()
        return True

    async def _edit(
        self,
        message: _Message,
        part: Rendered,
        markup: InlineKeyboardMarkup | None,
        *,
        final: bool,
    ) -> bool | None:
        """Whether the edit went through; None when the message is gone."""
        message_id = message.message_id

        def edit(plain: bool) -> Awaitable[object]:
            return self._bot.edit_message_text(
                chat_id=self._target.chat_id,
                message_id=message_id,
                text=part.text,
                entities=None if plain else part.entities,
                parse_mode=None,
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            )

        try:
            return await self._call(edit, final=final) is not None
        except TelegramBadRequest as exc:
            if described(exc, "message is not modified"):
                return True  # already showing it (e.g. our own earlier edit landed after all)
            if described(exc, "message to edit not found", "message can't be edited"):
                log.info("message %s in chat %s is gone", message_id, self._target.chat_id)
                return None
            raise

    async def _send(
        self, i: int, part: Rendered, markup: InlineKeyboardMarkup | None, *, final: bool
    ) -> object | None:
        """The sent message, or None when the limiter gave up."""
        reply = None
        if i == 0 and self._target.reply_to_message_id is not None:
            reply = ReplyParameters(
                message_id=self._target.reply_to_message_id, allow_sending_without_reply=True
            )

        def send(plain: bool) -> Awaitable[object]:
            return self._bot.send_message(
                chat_id=self._target.chat_id,
                text=part.text,
                entities=None if plain else part.entities,
                parse_mode=None,
                message_thread_id=self._target.thread_id,
                reply_parameters=reply,
                reply_markup=markup,
                link_preview_options=NO_PREVIEW,
            )

        # the first message is what the user waits for: it goes before intermediate edits
        urgent = not self.message_ids
        try:
            return await self._call(send, final=final, urgent=urgent)
        except TelegramBadRequest as exc:
            # allow_sending_without_reply does not cover every case (a reply across forum
            # topics, for one): the message still goes, without the reply
            if reply is None or not described(exc, "message to be replied not found"):
                raise
            log.info("replied-to message in chat %s is gone", self._target.chat_id)
            reply = None
            return await self._call(send, final=final, urgent=urgent)

    async def _delete(self, message_id: int) -> None:
        def delete(plain: bool) -> Awaitable[object]:
            return self._bot.delete_message(chat_id=self._target.chat_id, message_id=message_id)

        try:
            await self._call(delete, final=True)
        except TelegramBadRequest as exc:
            log.info("could not delete leftover message %s: %s", message_id, exc)

    async def _call(
        self,
        make: Callable[[bool], Awaitable[T]],
        *,
        final: bool,
        urgent: bool = False,
    ) -> T | None:
        """One Bot API call within the rate limits; None when an intermediate call must wait.

        ``make(plain)`` builds the request; plain=True drops the entities, for when Telegram
        refuses them. Final calls retry 429s (after retry_after), network errors and 5xx
        until FINAL_TIMEOUT.
        """
        deadline = time.monotonic() + FINAL_TIMEOUT
        failures = 0
        while True:
            pause = 0.0
            if not final and self.stopping:
                raise StopStreamingError
            async with self._limiter.slot(self._target.chat_id, final=final or urgent):
                if not final and self.stopping:
                    raise StopStreamingError
                self._stats.api_calls += 1
                self.in_call = True
                try:
                    return await make(self._plain)
                except TelegramRetryAfter as exc:
                    self._limiter.penalize(self._target.chat_id, exc.retry_after)
                    if not final:
                        return None  # retried later, with whatever the text is by then
                    if time.monotonic() + exc.retry_after > deadline:
                        raise
                    log.info("final message waits %ss (429)", exc.retry_after)
                except TelegramBadRequest as exc:
                    if self._plain or not is_parse_error(exc):
                        raise
                    log.warning("Telegram refused our entities, sending plain text: %s", exc)
                    self._plain = True
                except (TelegramNetworkError, TelegramServerError) as exc:
                    if not final:
                        log.info("intermediate update failed: %s", exc)
                        return None
                    failures += 1
                    pause = min(10.0, 0.5 * 2**failures)
                    if time.monotonic() + pause > deadline:
                        raise
                    log.warning("final message failed (%s); retrying in %.1fs", exc, pause)
                finally:
                    self.in_call = False
            if pause:
                await asyncio.sleep(pause)  # outside the slot: it would block the chat
