"""/stop across replicas on a real Redis: two in-process replicas, each with its own Redis
client, leases, turn queue (streaming from the fake GLM over HTTP) and stop signal, as
`bot.factory.operations.create_stopper` wires them. History is one Redis store both
replicas share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from bot.cluster.leases import RedisLeases
from bot.cluster.stop_signal import StopSignal
from bot.history import ConversationContext, HistoryStore, RedisHistoryStore
from bot.messages import TextPart
from bot.models import ModelCatalog, ModelSpec
from bot.stopping import StopOutcome, Stopper
from bot.storage.keys import ConversationKey, Keys
from bot.texts import text
from bot.turns.answer import Answerer
from bot.turns.queue import TurnQueue
from bot.turns.types import AnswerResult, Outcome, Turn
from tests.conftest import RedisProcess
from tests.fakes.glm import FakeGLM, Reply
from tests.harness import eventually, small_glm_client

KEY = ConversationKey(-100555)
ASKER, OTHER = 71, 72
REPLY_TIMEOUT = 1.0


class RecordingWriter:
    """The answer as the core hands it to Telegram delivery."""

    first_visible_at: float | None = None
    api_calls = 0

    def __init__(self) -> None:
        self.updates: list[str] = []
        self.final: str | None = None
        self.footer: str | None = None

    async def begin(self) -> None:
        pass

    def update(self, markdown: str) -> None:
        self.updates.append(markdown)

    def think(self, reasoning: str) -> None:
        pass

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        self.final, self.footer = markdown, footer

    async def aclose(self) -> None:
        pass


@dataclass
class Replica:
    leases: RedisLeases
    turns: TurnQueue
    stopper: Stopper
    signal: StopSignal
    store: HistoryStore
    # each answer's result, by question, as the after-answer hook hears it
    results: dict[str, asyncio.Future[AnswerResult]] = field(default_factory=dict)

    async def answered(self, turn: Turn, result: AnswerResult) -> None:
        self.results[turn.text].set_result(result)

    async def ask(
        self, question: str, user: int = ASKER
    ) -> tuple[asyncio.Future[AnswerResult], RecordingWriter]:
        writer = RecordingWriter()
        result = self.results[question] = asyncio.get_running_loop().create_future()
        await self.turns.submit(Turn(KEY, (TextPart(question),), user_id=user), writer)
        return result, writer


@asynccontextmanager
async def replica(
    redis_url: str, key_prefix: str, glm: FakeGLM, store: RedisHistoryStore | None = None
) -> AsyncIterator[Replica]:
    async with AsyncExitStack() as stack:
        client = aioredis.Redis.from_url(redis_url)
        stack.push_async_callback(client.aclose)
        keys = Keys(key_prefix, 42)
        leases = RedisLeases(client, keys, ttl=2.0, poll_interval=0.02)
        stack.push_async_callback(leases.aclose)
        llm = small_glm_client(glm)
        stack.push_async_callback(llm.aclose)
        store = store or RedisHistoryStore(client, keys)
        replica: Replica

        async def answered(turn: Turn, result: AnswerResult) -> None:
            await replica.answered(turn, result)

        answerer = Answerer(
            store=store,
            model=llm,
            models=ModelCatalog([ModelSpec("glm-4", 8192 + 512, 512, temperature=0.5)], "glm-4"),
            on_answered=answered,
        )
        turns = TurnQueue(answerer, leases=leases)
        # the answers end before the leases and the client they use are closed
        stack.push_async_callback(turns.drain, 10)
        signal = StopSignal(
            client, keys, held_elsewhere=leases.held_elsewhere, reply_timeout=REPLY_TIMEOUT
        )
        stopper = Stopper(turns, signal)
        signal.serve(stopper)
        await signal.start()
        stack.push_async_callback(signal.stop)
        replica = Replica(leases, turns, stopper, signal, store)
        yield replica


@pytest.fixture
async def glm() -> AsyncIterator[FakeGLM]:
    slow = Reply(tokens=[f"w{i} " for i in range(200)], token_interval=0.05)
    async with FakeGLM(default=slow) as fake:
        yield fake


@pytest.fixture
async def pair(
    redis_url: str, key_prefix: str, glm: FakeGLM, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Replica, Replica]]:
    async with replica(redis_url, key_prefix, glm) as a, replica(redis_url, key_prefix, glm) as b:
        yield a, b


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def ticket_queued(redis: aioredis.Redis, key_prefix: str) -> None:
    """Until a turn waits in the lease's queue in Redis: one replica holds the lease and
    another's turn has asked for it (its worker is past the local queue)."""
    lease = Keys(key_prefix, 42).chat_scoped(KEY.chat_id, "t0:lease")
    await eventually(lambda: redis.zcard(f"{lease}:queue"), 1, what="a ticket in the queue")


def admin(verdict: bool) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return verdict

    return check


async def test_a_stop_received_by_one_replica_stops_the_answer_on_the_other(
    pair: tuple[Replica, Replica], glm: FakeGLM
) -> None:
    a, b = pair
    answer, writer = await a.ask("a long story")
    await until(lambda: bool(writer.updates), "the first words on replica A")

    outcome = await b.stopper.stop(KEY, by=ASKER, may_administer=admin(False))

    assert outcome is StopOutcome.STOPPED
    result = await asyncio.wait_for(answer, 5)
    assert result.outcome is Outcome.STOPPED
    assert result.answer.startswith("w0")
    assert len(result.answer.split()) < 200, "the stream was cut, not completed"
    assert "Stopped" in (writer.footer or "")
    await glm.wait_cancelled(1)
    context = await a.store.load_context(KEY, 10**6)
    assert [(m.role, m.text) for m in context.messages] == [
        ("user", "a long story"),
        ("assistant", result.answer),
    ]


async def test_the_replica_writing_the_answer_decides_who_may_stop_it(
    pair: tuple[Replica, Replica],
) -> None:
    a, b = pair
    answer, writer = await a.ask("a long story")
    await until(lambda: bool(writer.updates), "the first words on replica A")

    refused = await b.stopper.stop(KEY, by=OTHER, may_administer=admin(False))
    assert refused is StopOutcome.NOT_ALLOWED
    assert a.turns.asker(KEY) == ASKER, "still answering"

    by_admin = await b.stopper.stop(KEY, by=OTHER, may_administer=admin(True))
    assert by_admin is StopOutcome.STOPPED
    assert (await asyncio.wait_for(answer, 5)).outcome is Outcome.STOPPED


async def test_nothing_to_stop_is_said_at_once_even_with_a_place_reserved_here(
    pair: tuple[Replica, Replica], redis_client: aioredis.Redis, key_prefix: str
) -> None:
    _, b = pair
    start = time.monotonic()
    assert await b.stopper.stop(KEY, by=ASKER, may_administer=admin(True)) is StopOutcome.NOTHING

    # the /stop update's own place in line (webhook mode reserves one on arrival) holds
    # the free lease: it is this replica's, not an answer elsewhere
    reservation = await b.leases.reserve(KEY)
    lease_key = Keys(key_prefix, 42).chat_scoped(KEY.chat_id, "t0:lease")
    assert await redis_client.exists(lease_key)
    try:
        outcome = await b.stopper.stop(KEY, by=ASKER, may_administer=admin(True))
    finally:
        await b.leases.release_unclaimed(reservation)
    assert outcome is StopOutcome.NOTHING
    assert time.monotonic() - start < REPLY_TIMEOUT / 2, "no wait for a reply nobody sends"


async def test_turns_queued_on_other_replicas_are_dropped_with_the_stopped_answer(
    pair: tuple[Replica, Replica], glm: FakeGLM, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    a, b = pair
    running, writer = await a.ask("first")
    await until(lambda: bool(writer.updates), "the first words on replica A")
    queued_on_b, told = await b.ask("second, queued on B")
    await ticket_queued(redis_client, key_prefix)
    assert b.turns.asker(KEY) is None, "waiting for A's lease is not answering"
    assert b.turns.in_flight == 0

    # the stop is received where the answer runs: B hears that its queued turn goes too
    assert await a.stopper.stop(KEY, by=ASKER, may_administer=admin(False)) is (StopOutcome.STOPPED)

    assert (await asyncio.wait_for(running, 5)).outcome is Outcome.STOPPED
    assert (await asyncio.wait_for(queued_on_b, 5)).outcome is Outcome.SKIPPED
    assert told.footer == text("dropped_by_stop")
    assert len(glm.requests) == 1, "the queued turn never reached GLM"


async def test_the_subscriber_comes_back_after_redis_restarts(
    own_redis: RedisProcess, key_prefix: str, glm: FakeGLM
) -> None:
    async with (
        replica(own_redis.url, key_prefix, glm) as a,
        replica(own_redis.url, key_prefix, glm) as b,
    ):
        assert a.signal.subscribed
        assert b.signal.subscribed
        own_redis.stop()
        await until(lambda: not a.signal.subscribed, "replica A to notice Redis is gone")
        own_redis.start()
        await until(
            lambda: a.signal.subscribed and b.signal.subscribed, "both to subscribe again", 20
        )

        answer, writer = await a.ask("a long story")
        await until(lambda: bool(writer.updates), "the first words on replica A")
        assert await b.stopper.stop(KEY, by=ASKER, may_administer=admin(False)) is (
            StopOutcome.STOPPED
        )
        assert (await asyncio.wait_for(answer, 5)).outcome is Outcome.STOPPED


class GatedStore(RedisHistoryStore):
    """Holds the answer in its context read (as a slow Redis would) until opened."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        super().__init__(redis, keys)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def load_context(self, key: ConversationKey, budget_tokens: int) -> ConversationContext:
        self.entered.set()
        await self.gate.wait()
        return await super().load_context(key, budget_tokens)


async def test_a_stop_before_the_stream_began_is_not_lost(
    redis_url: str, key_prefix: str, glm: FakeGLM, redis_client: aioredis.Redis
) -> None:
    store = GatedStore(redis_client, Keys(key_prefix, 42))
    async with (
        replica(redis_url, key_prefix, glm, store) as a,
        replica(redis_url, key_prefix, glm) as b,
    ):
        answer, writer = await a.ask("hello")
        await asyncio.wait_for(store.entered.wait(), 5)

        assert await b.stopper.stop(KEY, by=ASKER, may_administer=admin(False)) is (
            StopOutcome.STOPPED
        )
        store.gate.set()

        result = await asyncio.wait_for(answer, 5)
        assert result.outcome is Outcome.STOPPED
        assert "Stopped" in (writer.footer or "")
        assert glm.requests == [], "GLM was never asked"


async def test_one_whose_turn_waits_behind_another_replica_may_not_stop_its_answer(
    pair: tuple[Replica, Replica], redis_client: aioredis.Redis, key_prefix: str
) -> None:
    a, b = pair
    running, writer = await a.ask("a long story")
    await until(lambda: bool(writer.updates), "the first words on replica A")
    queued, _ = await b.ask("mine, queued on B", user=OTHER)
    await ticket_queued(redis_client, key_prefix)

    # B only waits for the lease: the answer and the say over it are A's
    refused = await b.stopper.stop(KEY, by=OTHER, may_administer=admin(False))
    assert refused is StopOutcome.NOT_ALLOWED
    assert a.turns.asker(KEY) == ASKER, "still answering"
    assert not running.done()

    assert await a.stopper.stop(KEY, by=ASKER, may_administer=admin(False)) is (StopOutcome.STOPPED)
    assert (await asyncio.wait_for(running, 5)).outcome is Outcome.STOPPED
    assert (await asyncio.wait_for(queued, 5)).outcome is Outcome.SKIPPED
