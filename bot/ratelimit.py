"""Telegram's flood limits as one bot-wide scheduler of outgoing messages and edits.

Telegram allows about one message per second in a chat, 20 per minute in a group and 30
per second for the whole bot; it answers 429 with ``retry_after`` beyond that. Every
message and edit waits here for all three budgets at once.

Why not aiolimiter: it rate-limits one key, while a send needs three budgets at once
(chat, group, bot) without holding a bot-wide slot while its chat is still cooling down,
plus precedence for final messages and pausing one chat after a 429. Waiters here are
granted in order (finals first, then arrival) by whoever frees capacity, with one timer
for the earliest moment something can change; no background task to own.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

# Seconds in Telegram's group window.
_GROUP_WINDOW = 60.0
# Share of a group's minute budget intermediate edits may not take, so that a stream
# of edits never delays the first or final messages of that group by a minute.
_GROUP_RESERVE = 0.25
# Forget a chat's state this long after its last message (bounds memory).
_IDLE_FORGET = 120.0


@dataclass(slots=True)
class _Chat:
    next_at: float = 0.0  # earliest next message (per-chat interval)
    paused_until: float = 0.0  # after a 429
    window: deque[float] = field(default_factory=deque)  # group sends in the last minute
    waiting: int = 0


@dataclass(slots=True)
class _Waiter:
    chat_id: int
    final: bool
    future: asyncio.Future[None]


class TelegramRateLimiter:
    """Per-chat, per-group and bot-wide budgets of Telegram messages, shared fairly."""

    def __init__(
        self,
        *,
        global_rate: float = 30,
        per_chat_interval: float = 1.0,
        group_per_minute: float = 20,
    ) -> None:
        if global_rate <= 0 or per_chat_interval < 0 or group_per_minute < 1:
            raise ValueError("rates must be positive")
        self._rate = global_rate
        # one second's worth of burst, as Telegram tolerates short bursts bot-wide
        self._capacity = max(1.0, global_rate)
        self._tokens = self._capacity
        self._refilled_at = time.monotonic()
        self._interval = per_chat_interval
        self._group_cap = max(1, math.floor(group_per_minute))
        self._group_cap_intermediate = max(1, math.floor(self._group_cap * (1 - _GROUP_RESERVE)))
        self._paused_until = 0.0
        self._chats: dict[int, _Chat] = {}
        self._finals: list[_Waiter] = []
        self._others: list[_Waiter] = []
        self._starved = False  # the head of the queue is waiting for the bot-wide budget
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._swept_at = time.monotonic()

    async def acquire(self, chat_id: int, *, final: bool = False) -> None:
        """Wait for a slot to send one message or edit in ``chat_id``.

        ``final`` requests (first and last messages of an answer) go before intermediate
        edits; within each kind, requests are served in arrival order across chats.
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(chat_id, final, loop.create_future())
        (self._finals if final else self._others).append(waiter)
        self._chat(chat_id).waiting += 1
        try:
            self._pump()
            await waiter.future
        finally:
            self._chat(chat_id).waiting -= 1
            if not waiter.future.done():  # cancelled while waiting
                waiter.future.cancel()
                self._pump()

    def try_acquire(self, chat_id: int) -> bool:
        """Take a slot for an optional intermediate edit only if one is free right now."""
        now = time.monotonic()
        self._refill(now)
        chat = self._chats.get(chat_id)
        if (
            self._starved
            or self._tokens < 1
            or self._paused_until > now
            or (chat is not None and chat.waiting)
            or self._ready_at(chat_id, final=False, now=now) > now
        ):
            return False
        self._take(chat_id, now)
        return True

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: pause the chat (or everything, for None) for retry_after."""
        until = time.monotonic() + max(0.0, retry_after)
        if chat_id is None:
            self._paused_until = max(self._paused_until, until)
        else:
            chat = self._chat(chat_id)
            chat.paused_until = max(chat.paused_until, until)
        self._pump()

    @property
    def busy(self) -> float:
        """Bot-wide load, 0 (idle) to 1 (the budget is spent and requests queue)."""
        self._refill(time.monotonic())
        used = self._capacity - self._tokens
        queued = len(self._finals) + len(self._others)
        return min(1.0, (used + queued) / self._capacity)

    @property
    def queued(self) -> int:
        """Requests waiting for a slot (for metrics)."""
        return sum(not w.future.done() for w in (*self._finals, *self._others))

    def chat_load(self, chat_id: int) -> float:
        """Load as seen from one chat: the bot-wide load or the group's minute budget used."""
        load = self.busy
        chat = self._chats.get(chat_id)
        if chat is not None and chat_id < 0:
            self._trim_window(chat, time.monotonic())
            load = max(load, min(1.0, len(chat.window) / self._group_cap_intermediate))
        return load

    # -- scheduling ------------------------------------------------------------

    def _pump(self) -> None:
        """Grant whatever can go now, in order; arm the timer for the next chance."""
        now = time.monotonic()
        self._refill(now)
        wake = math.inf
        self._starved = False
        blocked: set[int] = set()  # chats whose earlier waiter must go first
        for queue in (self._finals, self._others):
            kept: list[_Waiter] = []
            for waiter in queue:
                if waiter.future.done():
                    continue
                if self._starved or waiter.chat_id in blocked:
                    kept.append(waiter)
                    continue
                ready = max(self._ready_at(waiter.chat_id, waiter.final, now), self._paused_until)
                if ready > now:
                    blocked.add(waiter.chat_id)
                    wake = min(wake, ready)
                    kept.append(waiter)
                elif self._tokens < 1:
                    # bot-wide budget spent: nobody behind may overtake this waiter
                    self._starved = True
                    wake = min(wake, now + (1 - self._tokens) / self._rate)
                    kept.append(waiter)
                else:
                    self._take(waiter.chat_id, now)
                    waiter.future.set_result(None)
            queue[:] = kept
        self._arm(wake)
        if now - self._swept_at > _IDLE_FORGET:
            self._sweep(now)

    def _ready_at(self, chat_id: int, final: bool, now: float) -> float:
        chat = self._chats.get(chat_id)
        if chat is None:
            return now
        ready = max(chat.next_at, chat.paused_until)
        if chat_id < 0:
            self._trim_window(chat, now)
            cap = self._group_cap if final else self._group_cap_intermediate
            if len(chat.window) >= cap:
                ready = max(ready, chat.window[len(chat.window) - cap] + _GROUP_WINDOW)
        return ready

    def _take(self, chat_id: int, now: float) -> None:
        self._tokens -= 1
        chat = self._chat(chat_id)
        chat.next_at = now + self._interval
        if chat_id < 0:
            chat.window.append(now)

    def _arm(self, wake: float) -> None:
        if wake == math.inf:
            return
        if self._timer is not None:
            if self._timer_at <= wake and not self._timer.cancelled():
                return
            self._timer.cancel()
        delay = max(0.0, wake - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
        self._timer_at = wake

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._pump()

    def _refill(self, now: float) -> None:
        elapsed = now - self._refilled_at
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._refilled_at = now

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat()
        return chat

    @staticmethod
    def _trim_window(chat: _Chat, now: float) -> None:
        while chat.window and chat.window[0] <= now - _GROUP_WINDOW:
            chat.window.popleft()

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        for chat_id, chat in list(self._chats.items()):
            self._trim_window(chat, now)
            if (
                not chat.waiting
                and not chat.window
                and chat.next_at < now
                and chat.paused_until < now
            ):
                del self._chats[chat_id]
