"""The bot-wide scheduler of Telegram sends: budgets, order, 429 pauses."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.streaming.ratelimit import TelegramRateLimiter

GROUP = -100123


async def _queued(limiter: TelegramRateLimiter, count: int) -> None:
    """Poll until ``count`` requests wait in the limiter (tasks start in creation order)."""
    deadline = time.monotonic() + 2
    while limiter.queued < count:
        assert time.monotonic() < deadline, f"{limiter.queued} queued, expected {count}"
        await asyncio.sleep(0.001)


async def _timed(limiter: TelegramRateLimiter, chat_id: int, *, final: bool = False) -> float:
    await limiter.acquire(chat_id, final=final)
    return time.monotonic()


async def test_one_chat_is_spaced_by_the_interval() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0.1)
    start = time.monotonic()
    times = [await _timed(limiter, 1) for _ in range(4)]
    assert times[0] - start < 0.05
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.095 for gap in gaps), gaps


async def test_other_chats_are_not_delayed_by_a_busy_chat() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0.2)
    busy = [asyncio.create_task(_timed(limiter, 1)) for _ in range(5)]
    await _queued(limiter, 4)
    start = time.monotonic()
    other = await _timed(limiter, 2)
    assert other - start < 0.05
    done = sorted(await asyncio.gather(*busy))
    assert done[1] > other, "chat 1's second message waits for its interval, not chat 2"


async def test_global_budget_is_served_first_come_first_served() -> None:
    limiter = TelegramRateLimiter(global_rate=20, per_chat_interval=0)
    for chat in range(20):  # spend the one-second burst
        assert limiter.try_acquire(1000 + chat)
    order: list[int] = []

    async def one(chat: int) -> None:
        await limiter.acquire(chat)
        order.append(chat)

    tasks = []
    for chat in range(1, 9):
        tasks.append(asyncio.create_task(one(chat)))
        await _queued(limiter, chat)  # arrival order
    start = time.monotonic()
    await asyncio.gather(*tasks)
    assert order == list(range(1, 9))
    assert time.monotonic() - start >= 0.9, "no second holds more than 20"


async def test_final_messages_go_before_intermediate_edits() -> None:
    limiter = TelegramRateLimiter(global_rate=10, per_chat_interval=0)
    for chat in range(10):
        assert limiter.try_acquire(2000 + chat)
    order: list[str] = []

    async def one(chat: int, final: bool) -> None:
        await limiter.acquire(chat, final=final)
        order.append(f"{chat}{'F' if final else 'e'}")

    tasks = [asyncio.create_task(one(chat, False)) for chat in (1, 2, 3)]
    await _queued(limiter, 3)
    tasks += [asyncio.create_task(one(chat, True)) for chat in (4, 5)]
    await asyncio.gather(*tasks)
    assert order == ["4F", "5F", "1e", "2e", "3e"]


async def test_group_minute_budget_keeps_a_reserve_for_finals() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0, group_per_minute=4)
    # intermediate edits may take three of the four slots in a minute
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire(GROUP), timeout=1)
    assert not limiter.try_acquire(GROUP)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(GROUP), timeout=0.2)
    assert limiter.chat_load(GROUP) == 1.0
    # the final message still gets the reserved slot at once, then the group is full
    await asyncio.wait_for(limiter.acquire(GROUP, final=True), timeout=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(GROUP, final=True), timeout=0.2)
    # private chats are not bound by it
    await asyncio.wait_for(limiter.acquire(7, final=True), timeout=1)


async def test_penalize_pauses_only_that_chat() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0)
    limiter.penalize(1, 0.3)
    start = time.monotonic()
    assert await _timed(limiter, 2) - start < 0.05
    assert not limiter.try_acquire(1)
    assert await _timed(limiter, 1) - start >= 0.29


async def test_penalize_without_chat_pauses_everything() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0)
    limiter.penalize(None, 0.25)
    start = time.monotonic()
    assert not limiter.try_acquire(3)
    times = await asyncio.gather(_timed(limiter, 1), _timed(limiter, 2, final=True))
    assert min(times) - start >= 0.24


async def test_429s_in_several_chats_at_once_pause_everything() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0)
    limiter.penalize(1, 0.3)
    limiter.penalize(2, 0.3)
    assert limiter.try_acquire(9), "two chats may just be busy chats"
    limiter.penalize(3, 0.3)
    start = time.monotonic()
    assert not limiter.try_acquire(9), "three look like the bot-wide limit"
    assert await _timed(limiter, 9) - start >= 0.25


async def test_slot_counts_a_request_from_its_completion() -> None:
    """A burst that Telegram receives late must not overlap the next second's sends."""
    limiter = TelegramRateLimiter(global_rate=2, per_chat_interval=0)
    start = time.monotonic()
    release = asyncio.Event()

    async def slow_request(chat: int) -> None:
        async with limiter.slot(chat):
            await release.wait()

    slow = [asyncio.create_task(slow_request(chat)) for chat in (1, 2)]
    third = asyncio.create_task(_timed(limiter, 3))
    await _queued(limiter, 1)
    with pytest.raises(TimeoutError):  # both places are in flight
        await asyncio.wait_for(asyncio.shield(third), timeout=0.3)
    release.set()
    await asyncio.gather(*slow)
    released = time.monotonic()
    assert await third - released >= 0.95
    assert released - start >= 0.3


async def test_slot_granted_then_cancelled_gives_its_place_back() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0)
    limiter.penalize(None, 60)
    entered = asyncio.Event()

    async def use() -> None:
        async with limiter.slot(1):
            entered.set()

    user = asyncio.create_task(use())
    await _queued(limiter, 1)
    limiter._paused_until = 0.0  # lift the pause...
    limiter.penalize(7, 0)  # ...and let the queue move: the slot is granted now,
    user.cancel()  # and cancelled before the task could use it
    with pytest.raises(asyncio.CancelledError):
        await user
    assert not entered.is_set()
    assert limiter.busy == 0.0, "nothing left in flight"


async def test_try_acquire_takes_only_a_free_slot() -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0.3)
    assert limiter.try_acquire(5)
    assert not limiter.try_acquire(5), "within the chat's interval"
    assert limiter.try_acquire(6)
    waiting = asyncio.create_task(limiter.acquire(5))
    await _queued(limiter, 1)
    assert not limiter.try_acquire(5), "someone in that chat is already waiting"
    await waiting


async def test_cancelled_waiter_does_not_block_the_queue() -> None:
    limiter = TelegramRateLimiter(global_rate=5, per_chat_interval=0)
    for chat in range(5):
        assert limiter.try_acquire(3000 + chat)
    first = asyncio.create_task(limiter.acquire(1))
    second = asyncio.create_task(limiter.acquire(2))
    await _queued(limiter, 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=1)


async def test_busy_reflects_the_bot_wide_load() -> None:
    limiter = TelegramRateLimiter(global_rate=10, per_chat_interval=0)
    assert limiter.busy == pytest.approx(0.0, abs=0.05)
    for chat in range(5):
        await limiter.acquire(chat)
    assert 0.4 <= limiter.busy <= 0.6
    for chat in range(5, 10):
        await limiter.acquire(chat)
    assert limiter.busy > 0.9


def test_rejects_nonsense_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        TelegramRateLimiter(global_rate=0)
