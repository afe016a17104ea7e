"""Telegram's flood limits as one bot-wide scheduler of outgoing messages and edits.

Telegram allows about one message per second in a chat, 20 per minute in a group and 30
per second for the whole bot; it answers 429 with ``retry_after`` beyond that. Every
message and edit waits here for all three budgets at once.

Why not aiolimiter: it rate-limits one key, while a send needs three budgets at once
(chat, group, bot) without holding a bot-wide slot while its chat is still cooling down,
plus precedence for final messages and pausing one chat after a 429. Waiters here are
granted in order (finals first, then arrival) by whoever frees capacity, with one timer
for the earliest moment something can change; no background task to own.

Windows count a request from when it completed when the caller uses ``slot()``: Telegram
counts arrivals, and a burst granted at once can arrive spread out behind a busy event
loop or network, so counting from grant time lets the next second's sends overlap it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

# Seconds in Telegram's group window.
_GROUP_WINDOW = 60.0
# 429s in this many different chats within _FLOOD_WINDOW seconds mean the bot as a whole
# is over the limit (Telegram does not say which limit a 429 is about): pause everything.
_FLOOD_CHATS = 3
_FLOOD_WINDOW = 1.0
# Share of a group's minute budget intermediate edits may not take, so that a stream
# of edits never delays the first or final messages of that group by a minute.
_GROUP_RESERVE = 0.25
# Forget a chat's state this long after its last message (bounds memory).
_IDLE_FORGET = 120.0


class Timer(Protocol):
    """What a scheduled wake-up needs to offer (an `asyncio.TimerHandle` does)."""

    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...


# Schedules a callback after a delay in seconds of the limiter's clock.
CallLater = Callable[[float, Callable[[], None]], Timer]


def _loop_call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(slots=True)
class _Chat:
    next_at: float = 0.0  # earliest next message (per-chat interval)
    paused_until: float = 0.0  # after a 429
    window: deque[float] = field(default_factory=deque)  # group sends in the last minute
    waiting: int = 0
    in_flight: int = 0  # granted by slot(), not completed yet


@dataclass(slots=True)
class _Waiter:
    chat_id: int
    final: bool
    tracked: bool  # counted from completion (slot()), not from the grant
    future: asyncio.Future[None]


class TelegramRateLimiter:
    """Per-chat, per-group and bot-wide budgets of Telegram messages, shared fairly."""

    def __init__(
        self,
        *,
        global_rate: float = 30,
        per_chat_interval: float = 1.0,
        group_per_minute: float = 20,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater = _loop_call_later,
    ) -> None:
        """``clock`` (monotonic seconds) and ``call_later`` (a wake-up after a delay on
        that clock) default to real time on the running loop; tests pass a fake clock."""
        if global_rate <= 0 or per_chat_interval < 0 or group_per_minute < 1:
            raise ValueError("rates must be positive")
        self._window, self._cap = _global_window(global_rate)
        self.global_rate = global_rate
        self._sent: deque[float] = deque()
        self._in_flight = 0
        self._penalties: deque[tuple[float, int]] = deque()
        self._interval = per_chat_interval
        self._group_cap = max(1, math.floor(group_per_minute))
        self._group_cap_intermediate = max(1, math.floor(self._group_cap * (1 - _GROUP_RESERVE)))
        self._paused_until = 0.0
        self._chats: dict[int, _Chat] = {}
        self._finals: list[_Waiter] = []
        self._others: list[_Waiter] = []
        self._starved = False  # the head of the queue is waiting for the bot-wide budget
        self._timer: Timer | None = None
        self._timer_at = math.inf
        self._clock = clock
        self._call_later = call_later
        self._swept_at = clock()

    async def acquire(self, chat_id: int, *, final: bool = False) -> None:
        """Wait for a slot to send one message or edit in ``chat_id``.

        ``final`` requests (first and last messages of an answer) go before intermediate
        edits; within each kind, requests are served in arrival order across chats.
        """
        await self._acquire(chat_id, final=final, tracked=False)

    @asynccontextmanager
    async def slot(self, chat_id: int, *, final: bool = False) -> AsyncIterator[None]:
        """``acquire()`` around one request, counted in the windows from its completion."""
        await self._acquire(chat_id, final=final, tracked=True)
        try:
            yield
        finally:
            self._release(chat_id)

    async def _acquire(self, chat_id: int, *, final: bool, tracked: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(chat_id, final, tracked, loop.create_future())
        (self._finals if final else self._others).append(waiter)
        self._chat(chat_id).waiting += 1
        try:
            self._pump()
            await waiter.future
        except asyncio.CancelledError:
            if tracked and waiter.future.done() and not waiter.future.cancelled():
                self._release(chat_id, used=False)  # granted, then cancelled before use
            raise
        finally:
            self._chat(chat_id).waiting -= 1
            if not waiter.future.done():  # cancelled while waiting
                waiter.future.cancel()
                self._pump()

    def try_acquire(self, chat_id: int) -> bool:
        """Take a slot for an optional intermediate edit only if one is free right now."""
        now = self._clock()
        chat = self._chats.get(chat_id)
        if (
            self._starved
            or self._global_ready_at(now) > now
            or self._paused_until > now
            or (chat is not None and chat.waiting)
            or self._ready_at(chat_id, final=False, now=now) > now
        ):
            return False
        self._take(chat_id, now, tracked=False)
        return True

    def set_global_rate(self, rate: float) -> None:
        """Change the bot-wide budget (replicas share one, see `bot.cluster.replicas`); requests
        already waiting are granted under the new budget."""
        if rate <= 0:
            raise ValueError("rates must be positive")
        self._window, self._cap = _global_window(rate)
        self.global_rate = rate
        if self._finals or self._others:
            self._pump()

    def penalize(self, chat_id: int | None, retry_after: float) -> None:
        """Telegram answered 429: pause the chat (or everything, for None) for retry_after."""
        now = self._clock()
        until = now + max(0.0, retry_after)
        if chat_id is not None:
            chat = self._chat(chat_id)
            chat.paused_until = max(chat.paused_until, until)
            penalties = self._penalties
            penalties.append((now, chat_id))
            while penalties[0][0] < now - _FLOOD_WINDOW:
                penalties.popleft()
            if len({chat for _, chat in penalties}) >= _FLOOD_CHATS:
                chat_id = None
        if chat_id is None:
            self._paused_until = max(self._paused_until, until)
        self._pump()

    @property
    def busy(self) -> float:
        """Bot-wide load, 0 (idle) to 1 (the budget is spent and requests queue)."""
        self._global_ready_at(self._clock())  # trims the window
        queued = len(self._finals) + len(self._others)
        return min(1.0, (len(self._sent) + self._in_flight + queued) / self._cap)

    @property
    def queued(self) -> int:
        """Requests waiting for a slot (for metrics)."""
        return sum(not w.future.done() for w in (*self._finals, *self._others))

    def chat_load(self, chat_id: int) -> float:
        """Load as seen from one chat: the bot-wide load or the group's minute budget used."""
        load = self.busy
        chat = self._chats.get(chat_id)
        if chat is not None and chat_id < 0:
            self._trim_window(chat, self._clock())
            load = max(load, min(1.0, len(chat.window) / self._group_cap_intermediate))
        return load

    # -- scheduling ------------------------------------------------------------

    def _pump(self) -> None:
        """Grant whatever can go now, in order; arm the timer for the next chance."""
        now = self._clock()
        wake = math.inf
        self._starved = False
        blocked: set[int] = set()  # chats whose earlier waiter must go first
        for queue in (self._finals, self._others):
            kept: list[_Waiter] = []
            for index, waiter in enumerate(queue):
                if self._starved:
                    # Nobody else can go before the budget refills: keep the rest as it
                    # is (a thousand queued finals would otherwise be walked on every pump).
                    kept.extend(queue[index:])
                    break
                if waiter.future.done():
                    continue
                if waiter.chat_id in blocked:
                    kept.append(waiter)
                    continue
                ready = max(self._ready_at(waiter.chat_id, waiter.final, now), self._paused_until)
                if ready > now:
                    blocked.add(waiter.chat_id)
                    wake = min(wake, ready)
                    kept.append(waiter)
                elif (free_at := self._global_ready_at(now)) > now:
                    # bot-wide budget spent: nobody behind may overtake this waiter
                    self._starved = True
                    wake = min(wake, free_at)
                    kept.append(waiter)
                else:
                    self._take(waiter.chat_id, now, tracked=waiter.tracked)
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
            ready = max(ready, _window_ready_at(chat.window, chat.in_flight, cap, _GROUP_WINDOW))
        return ready

    def _global_ready_at(self, now: float) -> float:
        sent = self._sent
        while sent and sent[0] <= now - self._window:
            sent.popleft()
        return max(now, _window_ready_at(sent, self._in_flight, self._cap, self._window))

    def _take(self, chat_id: int, now: float, *, tracked: bool) -> None:
        chat = self._chat(chat_id)
        chat.next_at = now + self._interval
        if tracked:  # counted when it completes, see _release
            self._in_flight += 1
            chat.in_flight += 1
            return
        self._sent.append(now)
        if chat_id < 0:
            chat.window.append(now)

    def _release(self, chat_id: int, *, used: bool = True) -> None:
        """A slot()'s request completed: it counts in the windows from now."""
        now = self._clock()
        self._in_flight -= 1
        chat = self._chat(chat_id)
        chat.in_flight -= 1
        if used:
            self._sent.append(now)
            chat.next_at = max(chat.next_at, now + self._interval)
            if chat_id < 0:
                chat.window.append(now)
        self._pump()

    def _arm(self, wake: float) -> None:
        if wake == math.inf:
            return
        if self._timer is not None:
            if self._timer_at <= wake and not self._timer.cancelled():
                return
            self._timer.cancel()
        delay = max(0.0, wake - self._clock())
        self._timer = self._call_later(delay, self._on_timer)
        self._timer_at = wake

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._pump()

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
                and not chat.in_flight
                and not chat.window
                and chat.next_at < now
                and chat.paused_until < now
            ):
                del self._chats[chat_id]


def _global_window(rate: float) -> tuple[float, int]:
    """The bot-wide sliding window (seconds) and how many sends it holds.

    A sliding window, so that no second ever holds more than the rate, bursts included
    (a token bucket refilling while its burst is spent would allow twice as many)."""
    window = 1.0 if rate >= 1 else 1.0 / rate
    return window, max(1, math.floor(rate * window))


def _window_ready_at(window: deque[float], in_flight: int, cap: int, span: float) -> float:
    """When a sliding window of ``span`` seconds has room, with requests still in flight."""
    if len(window) + in_flight < cap:
        return 0.0
    room = cap - in_flight
    if room <= 0:
        return math.inf  # a completing request frees a place and pumps
    return window[len(window) - room] + span
