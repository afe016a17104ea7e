"""Conversation leases on a real Redis: two `RedisLeases` on separate clients stand for two
replicas; a crashed replica is a real process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.cluster.leases import RedisLeases
from bot.storage.keys import ConversationKey, Keys
from tests.conftest import RedisProcess

KEY = ConversationKey(777)
ROOT = Path(__file__).resolve().parent.parent
TTL = 0.4


@dataclass
class Gate:
    """Holds back the next script whose arguments match, until ``go`` is set."""

    matches: Callable[[list[str]], bool]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False


class ScriptSpy(aioredis.Redis):
    """A client that notes the arguments of every script it ran, so that a test can wait
    until a waiting turn has asked Redis for the lease (its ticket is the first argument)
    instead of giving it a while to do so; and that can hold a script back (`gate`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script_args: list[list[str]] = []
        self._gates: list[Gate] = []

    def gate(self, matches: Callable[[list[str]], bool]) -> Gate:
        gate = Gate(matches)
        self._gates.append(gate)
        return gate

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] != "EVALSHA":
            return await super().execute_command(*args, **options)
        script_args = [_text(arg) for arg in args[3 + int(args[2]) :]]
        gate = next((g for g in self._gates if g.matches(script_args)), None)
        if gate is not None:
            self._gates.remove(gate)
            gate.reached.set()
            await gate.go.wait()
        result = await super().execute_command(*args, **options)
        self.script_args.append(script_args)
        if gate is not None:
            gate.done = True  # the caller goes on with the result in this same step
        return result

    def asked_with(self, token: str, since: int = 0) -> int:
        """How many scripts run since call number ``since`` had ``token`` as first argument."""
        return sum(args[:1] == [token] for args in self.script_args[since:])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
async def replicas(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[RedisLeases, RedisLeases, list[str]]]:
    """Two lease managers on two clients of one Redis, and the errors they reported."""
    errors: list[str] = []
    clients = [ScriptSpy.from_url(redis_url) for _ in range(2)]
    a, b = (
        RedisLeases(c, Keys(key_prefix, 42), ttl=TTL, poll_interval=0.02, on_error=errors.append)
        for c in clients
    )
    yield a, b, errors
    await a.aclose()
    await b.aclose()
    for client in clients:
        await client.aclose()


def queue_key(prefix: str, chat_id: int = KEY.chat_id) -> str:
    return f"{lease_key(prefix, chat_id)}:queue"


def lease_key(prefix: str, chat_id: int = KEY.chat_id) -> str:
    return Keys(prefix, 42).chat_scoped(chat_id, "t0:lease")


def spy_of(leases: RedisLeases) -> ScriptSpy:
    spy = leases._redis
    assert isinstance(spy, ScriptSpy)
    return spy


async def tickets(client: aioredis.Redis, prefix: str) -> list[str]:
    """The tokens queued for KEY, first in line first."""
    return [_text(token) for token in await client.zrange(queue_key(prefix), 0, -1)]


async def held_throughout(
    client: aioredis.Redis, prefix: str, token: bytes, seconds: float, waiter: asyncio.Event
) -> None:
    """Check, all along ``seconds``, that the lease stays ``token``'s and ``waiter`` waits."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert await client.get(lease_key(prefix)) == token, "the lease changed hands"
        assert not waiter.is_set(), "a waiter got in while the lease was held"
        await asyncio.sleep(0.02)


async def test_one_holder_at_a_time_across_replicas_in_arrival_order(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, errors = replicas
    ran: list[str] = []
    inside = 0
    most_inside = 0
    release_first = asyncio.Event()

    async def turn(leases: RedisLeases, name: str, gate: asyncio.Event | None = None) -> None:
        nonlocal inside, most_inside
        async with leases.hold(KEY):
            inside += 1
            most_inside = max(most_inside, inside)
            ran.append(name)
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(0.01)
            inside -= 1

    first = asyncio.create_task(turn(a, "a1", release_first))
    await until(lambda: ran == ["a1"], "a1 to hold")
    tasks = [first]
    # alternate replicas; each joins the Redis queue before the next arrives
    for queued, (leases, name) in enumerate([(b, "b1"), (a, "a2"), (b, "b2"), (a, "a3")], 1):
        tasks.append(asyncio.create_task(turn(leases, name)))
        await asyncio.wait_for(_queue_length(redis_client, key_prefix, queued), 5)
    assert a.waiting(KEY) == 2
    assert b.waiting(KEY) == 2
    release_first.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)

    assert ran == ["a1", "b1", "a2", "b2", "a3"]
    assert most_inside == 1
    assert not errors
    assert a.waiting(KEY) == 0
    assert b.waiting(KEY) == 0
    assert await redis_client.zcard(queue_key(key_prefix)) == 0


async def _queue_length(client: aioredis.Redis, prefix: str, length: int) -> None:
    """Until the conversation's Redis queue holds `length` tickets (callers bound the wait)."""
    while True:
        if await client.zcard(queue_key(prefix)) == length:
            return
        await asyncio.sleep(0.005)


async def test_renewal_keeps_the_lease_beyond_its_ttl(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, errors = replicas
    b_held = asyncio.Event()

    async def b_turn() -> None:
        async with b.hold(KEY):
            b_held.set()

    async with a.hold(KEY):
        token = await redis_client.get(lease_key(key_prefix))
        assert token is not None
        waiter = asyncio.create_task(b_turn())
        await asyncio.wait_for(_queue_length(redis_client, key_prefix, 1), 5)
        # 3 ttls: without renewal the lease would have expired twice over
        await held_throughout(redis_client, key_prefix, token, 3 * TTL, b_held)
    await asyncio.wait_for(waiter, 5)
    assert b_held.is_set()
    assert not errors


async def test_different_conversations_do_not_wait_for_each_other(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
) -> None:
    a, b, _ = replicas
    entered: list[ConversationKey] = []

    async def enter(key: ConversationKey) -> None:
        async with b.hold(key):
            entered.append(key)

    others = [ConversationKey(KEY.chat_id, 5), ConversationKey(778)]  # a topic, a chat
    async with a.hold(KEY):
        for key in others:
            await asyncio.wait_for(enter(key), 5)
        assert entered == others, "entered while KEY was held"


async def test_a_cancelled_waiter_gives_up_its_place(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, _ = replicas

    async def hold_briefly(leases: RedisLeases) -> None:
        async with leases.hold(KEY):
            pass

    async with a.hold(KEY):
        doomed = asyncio.create_task(hold_briefly(b))
        await asyncio.wait_for(_queue_length(redis_client, key_prefix, 1), 5)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert await redis_client.zcard(queue_key(key_prefix)) == 0
        assert b.waiting(KEY) == 0
    # nothing left behind blocks the next turn (well within the ttl)
    await asyncio.wait_for(hold_briefly(b), 0.3)


class Holder:
    """A lease holder in another process (tests/lease_process.py)."""

    def __init__(self, redis_url: str, key_prefix: str, ttl: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.lease_process", redis_url, key_prefix, "777", str(ttl)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    async def wait_line(self, expected: str) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 10)
        assert line.decode().strip() == expected

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def test_a_crashed_holders_lease_expires(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_url: str,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, _, _ = replicas
    holder = Holder(redis_url, key_prefix, ttl=0.5)
    try:
        await holder.wait_line("waiting")
        await holder.wait_line("held")
        got = asyncio.Event()

        async def take() -> None:
            async with a.hold(KEY):
                got.set()

        token = await redis_client.get(lease_key(key_prefix))
        assert token is not None
        waiter = asyncio.create_task(take())
        await asyncio.wait_for(_queue_length(redis_client, key_prefix, 1), 5)
        # the other process is alive and renewing (2 ttls): no turn for us
        await held_throughout(redis_client, key_prefix, token, 1.0, got)
        holder.kill()
        killed_at = asyncio.get_running_loop().time()
        await asyncio.wait_for(waiter, 5)
        # given up within about one ttl of the last renewal
        assert asyncio.get_running_loop().time() - killed_at < 1.5
    finally:
        if holder.proc.poll() is None:
            holder.kill()


async def test_a_crashed_waiters_ticket_expires(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_url: str,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, _ = replicas
    holder = Holder(redis_url, key_prefix, ttl=0.5)
    try:
        async with a.hold(KEY):
            await holder.wait_line("waiting")
            await asyncio.wait_for(_queue_length(redis_client, key_prefix, 1), 5)
            behind = asyncio.create_task(_hold_once(b))
            await asyncio.wait_for(_queue_length(redis_client, key_prefix, 2), 5)
            holder.kill()  # dies while first in line
        await asyncio.wait_for(behind, 5)
        assert await redis_client.zcard(queue_key(key_prefix)) == 0
    finally:
        if holder.proc.poll() is None:
            holder.kill()


async def _hold_once(leases: RedisLeases) -> None:
    async with leases.hold(KEY):
        pass


async def test_without_redis_turns_are_still_ordered_in_the_process(
    own_redis: RedisProcess, key_prefix: str
) -> None:
    errors: list[str] = []
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.5)
    leases = RedisLeases(client, Keys(key_prefix, 42), ttl=0.4, on_error=errors.append)
    own_redis.stop()
    ran: list[int] = []
    inside = 0

    async def turn(n: int) -> None:
        nonlocal inside
        async with leases.hold(KEY):
            inside += 1
            assert inside == 1
            ran.append(n)
            await asyncio.sleep(0.01)
            inside -= 1

    try:
        await asyncio.wait_for(asyncio.gather(*(turn(n) for n in range(4))), 20)
    finally:
        await leases.aclose()
        await client.aclose()
    assert ran == [0, 1, 2, 3]
    assert "lease_enter" in errors


async def test_a_reservation_keeps_the_place_of_its_arrival(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, errors = replicas
    ran: list[str] = []
    busy = asyncio.Event()
    async with a.hold(KEY):
        # an update reaches replica b first, then one reaches a; a's turn gets ready to
        # ask first, but b's update arrived first and keeps its place
        early = await b.reserve(KEY)
        assert b.waiting(KEY) == 0  # a reservation is not a waiting turn yet
        late = asyncio.create_task(_hold_and_log(a, "late", ran))
        await asyncio.wait_for(_queue_length(redis_client, key_prefix, 2), 5)
        busy.set()
        _, late_ticket = await tickets(redis_client, key_prefix)
        released_at = len(spy_of(a).script_args)

    async def claim() -> None:
        with b.reserved(early):
            await _hold_and_log(b, "early", ran)

    # the lease is free: the late turn asks for it (twice), and is refused
    await until(lambda: spy_of(a).asked_with(late_ticket, released_at) >= 2, "late to ask")
    assert ran == []
    await asyncio.wait_for(asyncio.gather(claim(), late), 5)
    assert ran == ["early", "late"]
    assert busy.is_set()
    assert not errors


async def _hold_and_log(leases: RedisLeases, name: str, ran: list[str]) -> None:
    async with leases.hold(KEY):
        ran.append(name)


async def test_an_unclaimed_reservation_is_given_up(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, _ = replicas
    reservation = await a.reserve(KEY)  # e.g. a command: no turn will claim it
    waiter = asyncio.create_task(_hold_once(b))
    await asyncio.wait_for(_queue_length(redis_client, key_prefix, 1), 5)
    (ticket,) = await tickets(redis_client, key_prefix)
    # on arrival and once more since, the waiter asked for the lease the reservation took,
    # and was refused
    await until(lambda: spy_of(b).asked_with(ticket) >= 2, "the waiter to ask twice")
    assert not waiter.done()
    await a.release_unclaimed(reservation)
    await asyncio.wait_for(waiter, 0.3)  # well within the ttl
    assert await redis_client.zcard(queue_key(key_prefix)) == 0


async def test_a_lost_reservation_expires(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
) -> None:
    a, b, _ = replicas
    await a.reserve(KEY)  # its update failed before anyone could claim or release it
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(_hold_once(b), 5)
    assert loop.time() - started >= 0.3  # about one ttl (0.4 s), not at once


async def test_a_turn_started_claims_its_reservation_before_its_update_is_done(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, errors = replicas
    ran: list[str] = []
    async with a.hold(KEY):
        early = await b.reserve(KEY)
        with b.reserved(early):
            # the handler starts the answer in a task of its own, which runs later
            place = b.place(KEY)
        assert b.waiting(KEY) == 1  # a turn now, no longer a mere reservation
        # the webhook's handling of the update ends before that task reaches hold()
        await b.release_unclaimed(early)
        late = asyncio.create_task(_hold_and_log(a, "late", ran))
        # the early place is still in line, ahead of the late one
        await asyncio.wait_for(_queue_length(redis_client, key_prefix, 2), 5)

    async def started_turn() -> None:
        async with place:
            await _hold_and_log(b, "early", ran)

    await asyncio.wait_for(asyncio.gather(started_turn(), late), 5)
    assert ran == ["early", "late"]
    assert b.waiting(KEY) == 0
    assert not errors


async def test_a_place_no_turn_held_is_given_up_when_its_task_leaves_it(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, b, errors = replicas
    async with a.hold(KEY):
        reservation = await b.reserve(KEY)
        with b.reserved(reservation):
            reserved = b.place(KEY)
        unreserved = b.place(KEY)  # e.g. polling: its ticket is taken by its hold()
        assert b.waiting(KEY) == 2
        # e.g. repeated deliveries, dropped before their turns came
        async with reserved, unreserved:
            pass
        assert b.waiting(KEY) == 0
        assert await redis_client.zcard(queue_key(key_prefix)) == 0
    # nothing left behind blocks the next turn (well within the ttl)
    await asyncio.wait_for(_hold_once(b), 0.3)
    # and a place without a reservation takes its ticket when its hold() comes
    async with b.place(KEY):
        await asyncio.wait_for(_hold_once(b), 5)
    assert b.waiting(KEY) == 0
    assert not errors


async def test_a_renewal_that_reaches_redis_after_the_release_is_no_lost_lease(
    replicas: tuple[RedisLeases, RedisLeases, list[str]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    a, _, errors = replicas
    second_in, second_done = asyncio.Event(), asyncio.Event()

    async def second_turn() -> None:  # keeps the conversation, and its renewals, going
        async with a.hold(KEY):
            second_in.set()
            await second_done.wait()

    async with a.hold(KEY):
        token = _text(await redis_client.get(lease_key(key_prefix)))
        renewal = spy_of(a).gate(lambda args: args[1:2] == [token])
        second = asyncio.create_task(second_turn())
        await asyncio.wait_for(renewal.reached.wait(), 5)
    # released, and the next turn holds a lease of its own: only now does the renewal of
    # the old one reach Redis, which no longer knows it
    await asyncio.wait_for(second_in.wait(), 5)
    renewal.go.set()
    await until(lambda: renewal.done, "the late renewal's answer")
    second_done.set()
    await asyncio.wait_for(second, 5)
    assert not errors, "a lease given up is not a lease lost"
