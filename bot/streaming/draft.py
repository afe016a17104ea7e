"""The DraftWriter: an animated sendMessageDraft preview, then the real message(s).

One random draft_id per answer, so Telegram animates the changes; updates at most every
``draft_interval``. Drafts are previews, not messages: they bypass the rate limiter's
message budgets. A draft shows the tail part, the one that will be the last message.
When the Bot API server does not know drafts, the answer carries on as an EditWriter
and the outlet remembers it for a while (`bot.streaming.outlet`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNotFound,
    TelegramRetryAfter,
)

from bot.streaming.chain import described, is_parse_error
from bot.streaming.formatting import Rendered
from bot.streaming.thinking import thinking_part
from bot.streaming.writer import EditWriter, WriterBase

log = logging.getLogger(__name__)

# Telegram drops a draft about 30 s after its last update; refresh it before that when
# the model pauses.
_DRAFT_KEEPALIVE = 20.0
# Consecutive failed drafts (other than 429) after which this answer switches to edits.
_DRAFT_FAILURES = 3
_FAILURE_PAUSE = 1.0


def drafts_unsupported(exc: TelegramAPIError) -> bool:
    """Whether the Bot API server does not offer sendMessageDraft at all."""
    if isinstance(exc, TelegramNotFound):
        return True  # "Not Found": an older server without the method
    return isinstance(exc, TelegramBadRequest) and described(
        exc, "method not found", "unknown method", "not supported", "unsupported"
    )


class DraftWriter(WriterBase):
    """Streams an answer as a draft in a private chat, then sends it as messages."""

    def _init_state(self) -> None:
        self._draft_id = random.randint(1, 2**31 - 1)
        self._fallback: EditWriter | None = None
        self._shown: Rendered | None = None
        self._plain = False
        self._stopping = False
        self._drafting = False  # a sendMessageDraft request is in flight

    @property
    def draft_id(self) -> int | None:
        return self._draft_id

    @property
    def message_ids(self) -> list[int]:
        if self._fallback is not None:
            return self._fallback.message_ids
        return self._chain.message_ids

    def update(self, markdown: str) -> None:
        if self._fallback is not None and not (self._finished or self._closed):
            self._fallback.update(markdown)
        else:
            super().update(markdown)

    def think(self, reasoning: str) -> None:
        if self._fallback is not None and not (self._finished or self._closed):
            self._fallback.think(reasoning)
        else:
            super().think(reasoning)

    def _thinking_part(self, reasoning: str) -> Rendered:
        # a draft costs no message budget: it may follow the reasoning as it grows
        return thinking_part(reasoning)

    async def _final(self, markdown: str, footer: str | None, reasoning: str | None) -> None:
        """Send the final answer as real messages (the draft then disappears)."""
        if self._fallback is not None:
            await self._fallback.finish(markdown, footer=footer, reasoning=reasoning)
        else:
            await self._deliver_final(self._chain, markdown, footer, reasoning)

    async def aclose(self) -> None:
        await super().aclose()
        if self._fallback is not None:
            await self._fallback.aclose()

    def _in_call(self) -> bool:
        return self._drafting

    def _request_stop(self) -> None:
        self._stopping = True

    async def _run(self) -> None:
        failures = 0
        # see EditWriter._run on why stopping is checked before every wait
        while not self._stopping:
            refresh = False
            if self._shown is None:
                await self._dirty.wait()
            else:
                try:
                    await asyncio.wait_for(self._dirty.wait(), _DRAFT_KEEPALIVE)
                except TimeoutError:
                    refresh = True
            delay = self._next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._dirty.clear()
            parts = self._parts()
            if not parts or (parts[-1] == self._shown and not refresh):
                continue
            try:
                await self._send_draft(parts[-1])
            except TelegramRetryAfter as exc:
                self._retry_at(exc.retry_after)
                continue
            except TelegramAPIError as exc:
                if drafts_unsupported(exc):
                    self._hand_over(remember=True, reason=exc)
                    return
                if is_parse_error(exc) and not self._plain:
                    self._plain = True
                    self._retry_at(0)
                    continue
                failures += 1
                if failures >= _DRAFT_FAILURES:
                    self._hand_over(remember=False, reason=exc)
                    return
                log.info("draft in chat %s failed: %s", self._target.chat_id, exc)
                self._retry_at(_FAILURE_PAUSE)
                continue
            except Exception:
                log.exception("draft in chat %s failed", self._target.chat_id)
                self._retry_at(_FAILURE_PAUSE)
                continue
            failures = 0
            self._shown = parts[-1]
            self._stats.visible()
            await self._typing.stop()
            self._next_at = time.monotonic() + self._outlet.draft_interval

    async def _send_draft(self, part: Rendered) -> None:
        self._stats.api_calls += 1
        self._drafting = True
        try:
            await self._outlet.bot.send_message_draft(
                chat_id=self._target.chat_id,
                draft_id=self._draft_id,
                text=part.text,
                entities=None if self._plain else part.entities,
                parse_mode=None,
                message_thread_id=self._target.thread_id,
                can_stop=True,
            )
        finally:
            self._drafting = False

    def _retry_at(self, delay: float) -> None:
        self._next_at = time.monotonic() + delay
        self._dirty.set()

    def _hand_over(self, *, remember: bool, reason: Exception) -> None:
        """Carry on with edits: the same tracker, counters and typing indicator."""
        if remember:
            self._outlet.drafts_unavailable()
            log.warning("drafts are not available (%s): private chats stream by edits", reason)
        else:
            log.warning(
                "drafts keep failing in chat %s (%s): editing", self._target.chat_id, reason
            )
        self._fallback = EditWriter(
            self._outlet,
            self._target,
            stats=self._stats,
            typing=self._typing,
            tracker=self._tracker,
        )
        if self._markdown:
            self._fallback.update(self._markdown)
        elif self._thinking is not None:
            self._fallback.think(self._thinking)
