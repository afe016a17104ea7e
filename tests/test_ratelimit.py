"""The bot-wide scheduler of Telegram sends: budgets, order, 429 pauses.

Time is a `FakeClock`: a grant happens at an exact moment ("t0 + 1.0"), and "not yet"
is the limiter's own state (its queue, its next wake-up), never a wait that ran out.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.streaming.ratelimit import TelegramRateLimiter
from tests.fake_clock import FakeClock

GROUP = -100123


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter_on(clock: FakeClock, **budgets: float) -> TelegramRateLimiter:
    return TelegramRateLimiter(**budgets, clock=clock, call_later=clock.call_later)


async def _queued(clock: FakeClock, limiter: TelegramRateLimiter, count: int) -> None:
    """Let the tasks started so far reach the limiter (in creation order), then check."""
    await clock.settle()
    assert limiter.queued == count


async def _timed(
    clock: FakeClock, limiter: TelegramRateLimiter, chat_id: int, *, final: bool = False
) -> float:
    await limiter.acquire(chat_id, final=final)
    return clock()


async def test_one_chat_is_spaced_by_the_interval(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0.1)
    t0 = clock()

    async def four() -> list[float]:
        return [await _timed(clock, limiter, 1) for _ in range(4)]

    assert await clock.run(four()) == pytest.approx([t0, t0 + 0.1, t0 + 0.2, t0 + 0.3])


async def test_the_real_clock_wakes_a_waiter() -> None:
    """The default wiring: time.monotonic and the running loop's timers."""
    limiter = TelegramRateLimiter(per_chat_interval=0.05)
    await limiter.acquire(1)
    start = time.monotonic()
    await asyncio.wait_for(limiter.acquire(1), 5)
    assert time.monotonic() - start >= 0.04


async def test_other_chats_are_not_delayed_by_a_busy_chat(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0.2)
    t0 = clock()
    busy = [asyncio.create_task(_timed(clock, limiter, 1)) for _ in range(5)]
    await _queued(clock, limiter, 4)
    other = asyncio.create_task(_timed(clock, limiter, 2))
    await clock.settle()
    assert other.done(), "chat 2 does not queue behind chat 1"
    assert other.result() == t0
    done = await clock.run(asyncio.gather(*busy))
    assert sorted(done) == pytest.approx([t0 + 0.2 * n for n in range(5)])


async def test_global_budget_is_served_first_come_first_served(clock: FakeClock) -> None:
    limiter = limiter_on(clock, global_rate=20, per_chat_interval=0)
    t0 = clock()
    for chat in range(20):  # spend the one-second burst
        assert limiter.try_acquire(1000 + chat)
    order: list[int] = []

    async def one(chat: int) -> float:
        await limiter.acquire(chat)
        order.append(chat)
        return clock()

    tasks = []
    for chat in range(1, 9):
        tasks.append(asyncio.create_task(one(chat)))
        await _queued(clock, limiter, chat)  # arrival order
    assert clock.next_wake() == pytest.approx(t0 + 1.0), "no second holds more than 20"
    times = await clock.run(asyncio.gather(*tasks))
    assert order == list(range(1, 9))
    assert times == pytest.approx([t0 + 1.0] * 8)


async def test_final_messages_go_before_intermediate_edits(clock: FakeClock) -> None:
    limiter = limiter_on(clock, global_rate=10, per_chat_interval=0)
    for chat in range(10):
        assert limiter.try_acquire(2000 + chat)
    order: list[str] = []

    async def one(chat: int, final: bool) -> None:
        await limiter.acquire(chat, final=final)
        order.append(f"{chat}{'F' if final else 'e'}")

    tasks = [asyncio.create_task(one(chat, False)) for chat in (1, 2, 3)]
    await _queued(clock, limiter, 3)
    tasks += [asyncio.create_task(one(chat, True)) for chat in (4, 5)]
    await _queued(clock, limiter, 5)
    await clock.run(asyncio.gather(*tasks))
    assert order == ["4F", "5F", "1e", "2e", "3e"]


async def test_group_minute_budget_keeps_a_reserve_for_finals(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0, group_per_minute=4)
    t0 = clock()
    # intermediate edits may take three of the four slots in a minute
    for _ in range(3):
        assert limiter.try_acquire(GROUP)
    assert not limiter.try_acquire(GROUP)
    edit = asyncio.create_task(limiter.acquire(GROUP))
    await _queued(clock, limiter, 1)
    assert clock.next_wake() == pytest.approx(t0 + 60), "the edit waits for the minute"
    assert limiter.chat_load(GROUP) == 1.0
    # the final message still gets the reserved slot at once, then the group is full
    first_final = asyncio.create_task(limiter.acquire(GROUP, final=True))
    second_final = asyncio.create_task(limiter.acquire(GROUP, final=True))
    await _queued(clock, limiter, 2)
    assert first_final.done()
    # private chats are not bound by it
    private = asyncio.create_task(limiter.acquire(7, final=True))
    await _queued(clock, limiter, 2)
    assert private.done()
    assert clock.next_wake() == pytest.approx(t0 + 60)
    clock.advance(60)
    assert limiter.queued == 0, "a new minute: both waiters go"
    await asyncio.gather(edit, first_final, second_final, private)


async def test_penalize_pauses_only_that_chat(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0)
    t0 = clock()
    limiter.penalize(1, 0.3)
    assert await clock.run(_timed(clock, limiter, 2)) == t0
    assert not limiter.try_acquire(1)
    assert await clock.run(_timed(clock, limiter, 1)) == pytest.approx(t0 + 0.3)


async def test_penalize_without_chat_pauses_everything(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0)
    t0 = clock()
    limiter.penalize(None, 0.25)
    assert not limiter.try_acquire(3)
    both = asyncio.gather(_timed(clock, limiter, 1), _timed(clock, limiter, 2, final=True))
    assert await clock.run(both) == pytest.approx([t0 + 0.25] * 2)


async def test_429s_in_several_chats_at_once_pause_everything(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0)
    t0 = clock()
    limiter.penalize(1, 0.3)
    limiter.penalize(2, 0.3)
    assert limiter.try_acquire(9), "two chats may just be busy chats"
    limiter.penalize(3, 0.3)
    assert not limiter.try_acquire(9), "three look like the bot-wide limit"
    assert await clock.run(_timed(clock, limiter, 9)) == pytest.approx(t0 + 0.3)


async def test_slot_counts_a_request_from_its_completion(clock: FakeClock) -> None:
    """A burst that Telegram receives late must not overlap the next second's sends."""
    limiter = limiter_on(clock, global_rate=2, per_chat_interval=0)
    release = asyncio.Event()

    async def slow_request(chat: int) -> None:
        async with limiter.slot(chat):
            await release.wait()

    slow = [asyncio.create_task(slow_request(chat)) for chat in (1, 2)]
    third = asyncio.create_task(_timed(clock, limiter, 3))
    await _queued(clock, limiter, 1)
    # both places are in flight: only a completing request can free one, no timer can
    assert clock.next_wake() is None
    clock.advance(0.3)  # the two requests take a while
    release.set()
    await asyncio.gather(*slow)
    released = clock()
    assert await clock.run(third) == pytest.approx(released + 1.0)


async def test_slot_granted_then_cancelled_gives_its_place_back(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0)
    limiter.penalize(None, 60)
    entered = asyncio.Event()

    async def use() -> None:
        async with limiter.slot(1):
            entered.set()

    user = asyncio.create_task(use())
    await _queued(clock, limiter, 1)
    clock.advance(60)  # the pause ends: the slot is granted now,
    assert limiter.queued == 0
    user.cancel()  # and cancelled before the task could use it
    with pytest.raises(asyncio.CancelledError):
        await user
    assert not entered.is_set()
    assert limiter.busy == 0.0, "nothing left in flight"


async def test_try_acquire_takes_only_a_free_slot(clock: FakeClock) -> None:
    limiter = limiter_on(clock, per_chat_interval=0.3)
    t0 = clock()
    assert limiter.try_acquire(5)
    assert not limiter.try_acquire(5), "within the chat's interval"
    assert limiter.try_acquire(6)
    waiting = asyncio.create_task(_timed(clock, limiter, 5))
    await _queued(clock, limiter, 1)
    assert not limiter.try_acquire(5), "someone in that chat is already waiting"
    assert await clock.run(waiting) == pytest.approx(t0 + 0.3)


async def test_cancelled_waiter_does_not_block_the_queue(clock: FakeClock) -> None:
    limiter = limiter_on(clock, global_rate=5, per_chat_interval=0)
    t0 = clock()
    for chat in range(5):
        assert limiter.try_acquire(3000 + chat)
    first = asyncio.create_task(limiter.acquire(1))
    second = asyncio.create_task(_timed(clock, limiter, 2))
    await _queued(clock, limiter, 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await clock.run(second) == pytest.approx(t0 + 1.0)


async def test_busy_reflects_the_bot_wide_load(clock: FakeClock) -> None:
    limiter = limiter_on(clock, global_rate=10, per_chat_interval=0)
    assert limiter.busy == 0.0
    for chat in range(5):
        await limiter.acquire(chat)
    assert limiter.busy == 0.5
    for chat in range(5, 10):
        await limiter.acquire(chat)
    assert limiter.busy == 1.0
    clock.advance(1.0)
    assert limiter.busy == 0.0, "the window has passed"


def test_rejects_nonsense_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        TelegramRateLimiter(global_rate=0)
