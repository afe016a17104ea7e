"""What every answer writer shares, and the EditWriter: one message edited as it grows.

Cadence of edits: the first text goes out at once; then at most one edit per
``edit_interval``, stretched by +1 s per 1,000 characters beyond 2,000 (at most +4 s: a
long answer gains little per edit and each edit re-sends up to 4 kB) and multiplied by
``1 + 2 * load``, where load is the limiter's bot-wide load or, in a group, the share of
the group's minute budget already used (0..1). Edits always carry the latest text;
intermediate texts are skipped and identical edits never sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramServerError,
)

from bot.streaming.chain import MessageChain, Stats, StopStreamingError, Target, with_footer
from bot.streaming.formatting import Rendered, plain_parts
from bot.streaming.outlet import Outlet
from bot.streaming.parts import PartTracker
from bot.streaming.thinking import thinking_part, with_reasoning

log = logging.getLogger(__name__)

# Telegram shows "typing…" for about 5 s per chat action.
_TYPING_REPEAT = 4.5
_STRETCH_FROM = 2000  # characters
_STRETCH_PER_1000 = 1.0  # seconds
_STRETCH_MAX = 4.0
_LOAD_FACTOR = 2.0
# Part size for the last-resort plain-text resend of a refused final answer.
_PLAIN_LIMIT = 3000


class Typing:
    """The "typing…" chat action (or another, e.g. "upload_photo"), repeated until
    stopped (at the first visible text).

    Not aiogram's ChatActionSender: its worker dies on the first failed call, leaving an
    exception nobody retrieves, and its calls would not be counted in ``api_calls``.
    """

    def __init__(
        self, outlet: Outlet, target: Target, stats: Stats, action: str = "typing"
    ) -> None:
        self._bot = outlet.bot
        self._target = target
        self._stats = stats
        self._action = action
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), name=f"typing-{self._target.chat_id}")

    async def stop(self) -> None:
        self._stopped = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            self._stats.api_calls += 1
            try:
                await self._bot.send_chat_action(
                    chat_id=self._target.chat_id,
                    action=self._action,
                    message_thread_id=self._target.thread_id,
                )
            except Exception as exc:  # a missing "typing…" is not worth more than a line
                log.debug("typing action in chat %s failed: %s", self._target.chat_id, exc)
                retry_after = getattr(exc, "retry_after", None)
                if isinstance(retry_after, int | float):
                    await asyncio.sleep(retry_after)
                    continue
            await asyncio.sleep(_TYPING_REPEAT)


class WriterBase(ABC):
    """The latest text, the background task that delivers it, the final delivery."""

    def __init__(
        self,
        outlet: Outlet,
        target: Target,
        *,
        stats: Stats | None = None,
        typing: Typing | None = None,
        tracker: PartTracker | None = None,
    ) -> None:
        self._outlet = outlet
        self._target = target
        self._stats = stats if stats is not None else Stats()
        self._typing = typing if typing is not None else Typing(outlet, target, self._stats)
        self._tracker = tracker if tracker is not None else PartTracker()
        # the messages of this answer
        self._chain = MessageChain(outlet.bot, outlet.limiter, target, self._stats)
        self._markdown = ""
        # a thinking model's reasoning so far, until its answer text begins
        self._thinking: str | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._finished = False
        self._closed = False
        # when the next update may go out
        self._next_at = 0.0
        self._init_state()

    def _init_state(self) -> None:  # noqa: B027 (optional hook, empty on purpose)
        """A subclass's own state, set up at construction."""

    @property
    def first_visible_at(self) -> float | None:
        return self._stats.first_visible_at

    @property
    def api_calls(self) -> int:
        return self._stats.api_calls

    @property
    def draft_id(self) -> int | None:
        return None

    async def begin(self) -> None:
        """Show "typing…" until the first visible text."""
        if not (self._finished or self._closed):
            self._typing.start()

    def think(self, reasoning: str) -> None:
        """The model is thinking: show that it is (until its answer text begins)."""
        if self._markdown:
            return
        self._thinking = reasoning
        self._wake()

    def update(self, markdown: str) -> None:
        """Take the whole answer so far; a background task delivers the latest."""
        self._markdown = markdown
        self._wake()

    def _wake(self) -> None:
        if self._finished or self._closed:
            return
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(
                self._run_logged(), name=f"stream-{self._target.chat_id}"
            )

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        """Deliver the final answer completely (all parts), retrying flood limits."""
        if self._finished:
            log.warning("finish() called twice for chat %s", self._target.chat_id)
            return
        self._finished = True
        await self._stop_loop()
        await self._final(markdown, footer, reasoning)

    @abstractmethod
    async def _final(self, markdown: str, footer: str | None, reasoning: str | None) -> None:
        """Send the final answer, the loop being stopped."""

    async def aclose(self) -> None:
        """Cancel background work without sending anything; idempotent."""
        self._closed = True
        await self._stop_loop()
        await self._typing.stop()

    def _parts(self) -> list[Rendered]:
        """What the message(s) should show now."""
        if not self._markdown and self._thinking is not None:
            return [self._thinking_part(self._thinking)]
        return self._tracker.parts(self._markdown)

    def _thinking_part(self, reasoning: str) -> Rendered:
        """The sign of thinking: the sign alone (edits spend the chat's message budget)."""
        return thinking_part(None)

    @abstractmethod
    async def _run(self) -> None:
        """Deliver the latest text until stopped."""

    @abstractmethod
    def _in_call(self) -> bool:
        """Whether a request is in flight (cancelling it could orphan a message)."""

    @abstractmethod
    def _request_stop(self) -> None:
        """Make the loop return at its next safe point."""

    async def _run_logged(self) -> None:
        try:
            await self._run()
        except StopStreamingError:
            pass
        except Exception:
            log.exception("streaming an answer to chat %s failed", self._target.chat_id)

    async def _stop_loop(self) -> None:
        """End the background task, letting a request in flight complete first."""
        task = self._task
        if task is None or task.done():
            return
        self._request_stop()
        if not self._in_call():
            task.cancel()
        await asyncio.wait([task])

    async def _deliver_final(
        self, chain: MessageChain, markdown: str, footer: str | None, reasoning: str | None
    ) -> None:
        answer = self._tracker.parts(markdown)
        if not answer and markdown.strip():
            # rendered to nothing (e.g. only an empty code fence): show the source itself
            answer = [Rendered(p, []) for p in plain_parts(markdown)]
        parts = with_footer(with_reasoning(answer, reasoning), footer)
        try:
            if parts:
                try:
                    await chain.show(parts, final=True)
                except TelegramBadRequest as exc:
                    # a refusal we did not foresee ("message is too long"...): the user
                    # still gets the words, as plain text in smaller messages
                    log.warning("final answer refused (%s); resending as plain text", exc)
                    text = "\n\n".join(part.text for part in parts)
                    plain = [Rendered(p, []) for p in plain_parts(text, _PLAIN_LIMIT)]
                    await chain.show(plain, final=True)
            elif not chain.message_ids:
                log.warning("empty answer for chat %s: nothing to send", self._target.chat_id)
        except TelegramForbiddenError as exc:  # blocked by the user, removed from the group
            log.info("chat %s refuses messages: %s", self._target.chat_id, exc)
        except Exception:
            log.exception(
                "the final answer could not be delivered to chat %s", self._target.chat_id
            )
        finally:
            await self._typing.stop()


class EditWriter(WriterBase):
    """Sends the first text at once, then edits it; long answers continue in new messages."""

    @property
    def message_ids(self) -> list[int]:
        return self._chain.message_ids

    async def _final(self, markdown: str, footer: str | None, reasoning: str | None) -> None:
        await self._deliver_final(self._chain, markdown, footer, reasoning)

    def _in_call(self) -> bool:
        return self._chain.in_call

    def _request_stop(self) -> None:
        self._chain.stopping = True

    async def _run(self) -> None:
        # stopping is checked before every wait: finish() lets a request in flight
        # complete instead of cancelling it, and then waits for this loop to return
        while not self._chain.stopping:
            await self._dirty.wait()
            if self._chain.message_ids:
                delay = self._next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._dirty.clear()
            try:
                delivered = await self._push()
            except StopStreamingError:
                raise
            except (TelegramNetworkError, TelegramServerError) as exc:
                log.info("update of chat %s failed: %s", self._target.chat_id, exc)
                delivered = False
            except TelegramAPIError as exc:
                # chat gone, bot blocked...: no point in editing further; finish() tries once
                log.warning("stopped streaming to chat %s: %s", self._target.chat_id, exc)
                return
            except Exception:
                log.exception("update of chat %s failed", self._target.chat_id)
                delivered = False
            if not delivered:
                self._dirty.set()  # retried with whatever the text is by then
                self._next_at = time.monotonic() + self._interval()

    async def _push(self) -> bool:
        parts = self._parts()
        if not parts or self._chain.shows(parts, final=False):
            return True
        delivered = await self._chain.show(parts, final=False)
        if self._stats.first_visible_at is not None:
            await self._typing.stop()
        self._next_at = time.monotonic() + self._interval()
        return delivered

    def _interval(self) -> float:
        extra = max(0, len(self._markdown) - _STRETCH_FROM) / 1000 * _STRETCH_PER_1000
        load = self._outlet.limiter.chat_load(self._target.chat_id)
        base = self._outlet.edit_interval + min(_STRETCH_MAX, extra)
        return base * (1 + _LOAD_FACTOR * load)
