"""The turn queue (`bot.turns.queue`): order within a conversation, answers in parallel
across them, /stop, failures, drain, and nothing left behind once a conversation is idle.

History and the journal are the real Redis stores; the model and the writer are test
doubles of our own ports (`ChatModel`, `AnswerWriter`), so that a test decides exactly
when an answer is in the middle of its stream.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.history import ConversationContext, RedisHistoryStore
from bot.llm import GLMOptions, StreamEnd, StreamEvent, TextDelta, Usage
from bot.messages import Message, TextPart
from bot.models import ModelCatalog, ModelSpec
from bot.storage.keys import ConversationKey, Keys
from bot.texts import text
from bot.turns.answer import Answerer
from bot.turns.journal import PendingTurn, TurnJournal
from bot.turns.outcomes import STOPPED_EMPTY
from bot.turns.queue import TurnQueue
from bot.turns.types import AnswerResult, Outcome, Turn

BOT_ID = 42
KEY = ConversationKey(4242)
OTHER = ConversationKey(-100777, 3)
USER = 77
DROPPED = text("dropped_by_stop")
STOPPED = text("stopped")
SORRY = text("unexpected_error")


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Model:
    """Answers "Re: <question>". While held, each answer stops after "Re: " until released."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.requests: list[list[Mapping[str, Any]]] = []
        self.closed_early = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], options: GLMOptions
    ) -> AsyncGenerator[StreamEvent, None]:
        question = str(messages[-1]["content"])
        self.requests.append(list(messages))
        self.asked.append(question)
        finished = False
        try:
            yield TextDelta("Re: ")
            await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            yield TextDelta(question)
            yield StreamEnd("stop", Usage(10, 5, 15))
            finished = True
        finally:
            if not finished:
                self.closed_early += 1


class Writer:
    """What the core hands to delivery."""

    first_visible_at: float | None = None
    api_calls = 0

    def __init__(self) -> None:
        self.began = False
        self.updates: list[str] = []
        self.finals: list[tuple[str, str | None]] = []
        self.closed = False

    async def begin(self) -> None:
        self.began = True

    def update(self, markdown: str) -> None:
        self.updates.append(markdown)

    def think(self, reasoning: str) -> None:
        pass

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        self.finals.append((markdown, footer))

    async def aclose(self) -> None:
        self.closed = True


class BrokenWriter(Writer):
    """A bug in delivery: what no part of the answer expects."""

    async def begin(self) -> None:
        raise RuntimeError("writer bug")


@dataclass
class Rig:
    queue: TurnQueue
    model: Model
    store: RedisHistoryStore
    redis: aioredis.Redis
    keys: Keys
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)
    failures: list[tuple[Turn, Exception]] = field(default_factory=list)

    async def ask(
        self, question: str, key: ConversationKey = KEY, writer: Writer | None = None
    ) -> Writer:
        writer = writer or Writer()
        await self.queue.submit(turn(question, key), writer)
        return writer

    async def journalled(self) -> int:
        return int(await self.redis.hlen(self.keys.bot_scoped("pending")))


def turn(question: str, key: ConversationKey = KEY, user: int = USER) -> Turn:
    return Turn(key, (TextPart(question),), user_id=user)


def catalog() -> ModelCatalog:
    return ModelCatalog([ModelSpec("glm-test", context_window=8192, max_tokens=512)], "glm-test")


async def never_lost(turn: PendingTurn) -> None:
    raise AssertionError(f"no process died: {turn}")


def build(
    redis: aioredis.Redis,
    keys: Keys,
    model: Model,
    store: RedisHistoryStore | None = None,
    journal: TurnJournal | None = None,
) -> Rig:
    store = store or RedisHistoryStore(redis, keys)
    rig: Rig

    async def answered(turn: Turn, result: AnswerResult) -> None:
        rig.outcomes.append((turn.text, result.outcome))

    def failed(turn: Turn, exc: Exception) -> None:
        rig.failures.append((turn, exc))

    answerer = Answerer(store=store, model=model, models=catalog(), on_answered=answered)
    journal = journal or TurnJournal(redis, keys, never_lost, heartbeat=60, grace=30)
    queue = TurnQueue(answerer, journal=journal, on_failed=failed)
    rig = Rig(queue, model, store, redis, keys)
    return rig


@pytest.fixture
async def rig(redis_client: aioredis.Redis, key_prefix: str) -> AsyncIterator[Rig]:
    rig = build(redis_client, Keys(key_prefix, BOT_ID), Model())
    yield rig
    rig.model.release()
    assert await rig.queue.drain(10) == 0


async def history(rig: Rig, key: ConversationKey = KEY) -> list[tuple[str, str]]:
    context = await rig.store.load_context(key, 10**6)
    return [(m.role, m.text) for m in context.messages]


async def test_turns_of_a_conversation_are_answered_in_the_order_they_came(rig: Rig) -> None:
    rig.model.hold()
    writers = [await rig.ask(q) for q in ("one", "two", "three")]
    await until(lambda: rig.model.asked == ["one"], "the first request")
    assert rig.queue.waiting(KEY) == 2
    assert rig.queue.asker(KEY) == USER
    assert rig.queue.in_flight == 1
    assert await rig.journalled() == 3, "queued turns are on record from the start"

    rig.model.release()
    assert await rig.queue.drain(10) == 0
    assert rig.model.asked == ["one", "two", "three"]
    assert [w.finals for w in writers] == [[(f"Re: {q}", None)] for q in ("one", "two", "three")]
    assert all(w.closed for w in writers)
    # each was asked only once the one before it was stored
    assert rig.model.requests[2][:-1] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Re: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Re: two"},
    ]
    assert rig.outcomes == [(q, Outcome.COMPLETED) for q in ("one", "two", "three")]
    assert await rig.journalled() == 0
    assert not rig.queue.is_answering(KEY)


async def test_conversations_are_answered_in_parallel(rig: Rig) -> None:
    rig.model.hold()
    here = await rig.ask("here")
    there = await rig.ask("there", OTHER)
    # both streams are under way at once: neither waits for the other's end
    await until(lambda: sorted(rig.model.asked) == ["here", "there"], "both requests")
    assert rig.queue.in_flight == 2
    assert (rig.queue.waiting(KEY), rig.queue.waiting(OTHER)) == (0, 0)
    assert here.finals == there.finals == []

    rig.model.release()
    assert await rig.queue.drain(10) == 0
    assert (here.finals, there.finals) == ([("Re: here", None)], [("Re: there", None)])
    assert await history(rig, OTHER) == [("user", "there"), ("assistant", "Re: there")]
    assert await history(rig) == [("user", "here"), ("assistant", "Re: here")]


async def test_stop_stops_the_answer_and_tells_each_dropped_turn_once(rig: Rig) -> None:
    rig.model.hold()
    running = await rig.ask("first")
    queued = [await rig.ask(q) for q in ("second", "third")]
    elsewhere = await rig.ask("untouched", OTHER)
    await until(lambda: running.updates == ["Re: "], "the first words")

    assert rig.queue.stop(KEY)
    assert rig.queue.waiting(KEY) == 0, "dropped turns no longer count as waiting"
    await until(lambda: not rig.queue.is_answering(KEY), "the stopped answer to end")
    assert not rig.queue.stop(KEY), "nothing left to stop"

    rig.model.release()
    assert await rig.queue.drain(10) == 0
    assert running.finals == [("Re: ", STOPPED)]
    for writer in queued:
        assert writer.finals == [("", DROPPED)], "exactly one note per dropped turn"
        assert writer.closed
        assert not writer.began
    assert elsewhere.finals == [("Re: untouched", None)], "a stop is for one conversation"
    assert rig.model.asked == ["first", "untouched"], "dropped turns never reached the model"
    assert rig.model.closed_early == 1, "the stream was cut, not read to its end"
    assert sorted(rig.outcomes) == sorted(
        [
            ("first", Outcome.STOPPED),
            ("second", Outcome.SKIPPED),
            ("third", Outcome.SKIPPED),
            ("untouched", Outcome.COMPLETED),
        ]
    )
    # what the user saw is what the model will be told it said
    assert await history(rig) == [("user", "first"), ("assistant", "Re: ")]
    assert await rig.journalled() == 0

    # a turn sent after the /stop is answered
    after = await rig.ask("fourth")
    assert await rig.queue.drain(10) == 0
    assert after.finals == [("Re: fourth", None)]


class GatedJournal(TurnJournal):
    """Holds `record` of the questions in `gated` (as a slow Redis would) until opened."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, gated: set[str]) -> None:
        super().__init__(redis, keys, never_lost, heartbeat=60, grace=30)
        self.gated = gated
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def record(self, turn: Turn) -> str | None:
        if turn.text in self.gated:
            self.entered.set()
            await self.gate.wait()
        return await super().record(turn)


async def test_a_stop_while_a_queued_turn_is_being_written_down_drops_it(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix, BOT_ID)
    journal = GatedJournal(redis_client, keys, {"second"})
    rig = build(redis_client, keys, Model(), journal=journal)
    rig.model.hold()
    first = await rig.ask("first")
    await until(lambda: bool(first.updates), "the first words")
    # queued behind it, and still being written down
    submitting = asyncio.create_task(rig.ask("second"))
    await asyncio.wait_for(journal.entered.wait(), 5)
    assert rig.queue.waiting(KEY) == 1
    assert rig.queue.stop(KEY)
    journal.gate.set()
    second = await asyncio.wait_for(submitting, 5)
    rig.model.release()
    assert await rig.queue.drain(10) == 0
    assert first.finals == [("Re: ", STOPPED)]
    assert second.finals == [("", DROPPED)]
    assert second.closed
    assert rig.model.asked == ["first"]
    assert rig.outcomes == [("first", Outcome.STOPPED), ("second", Outcome.SKIPPED)]
    assert await rig.journalled() == 0, "recorded after the stop, and ended all the same"


async def test_a_worker_cut_off_while_its_turn_is_written_down_leaves_submit_intact(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix, BOT_ID)
    journal = GatedJournal(redis_client, keys, {"q"})
    rig = build(redis_client, keys, Model(), journal=journal)
    submitting = asyncio.create_task(rig.ask("q"))
    await asyncio.wait_for(journal.entered.wait(), 5)
    # the answer is out, its worker waits for the journal's ticket to end it; then the
    # worker is cancelled (as at shutdown: drain timed out and the loop ends)
    await until(lambda: rig.outcomes == [("q", Outcome.COMPLETED)], "the answer")
    worker = rig.queue._lines[KEY].worker
    assert worker is not None
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    journal.gate.set()
    writer = await asyncio.wait_for(submitting, 5)  # returns, instead of InvalidStateError
    assert writer.finals == [("Re: q", None)]
    assert await rig.journalled() == 1, "cut off: left for the restart to report"


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
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix, BOT_ID)
    store = GatedStore(redis_client, keys)
    rig = build(redis_client, keys, Model(), store)
    writer = await rig.ask("hello")
    await asyncio.wait_for(store.entered.wait(), 5)
    assert rig.queue.is_answering(KEY)

    assert rig.queue.stop(KEY)
    store.gate.set()
    assert await rig.queue.drain(10) == 0
    assert writer.finals == [("", STOPPED)]
    assert rig.model.asked == [], "the model was never asked"
    assert rig.outcomes == [("hello", Outcome.STOPPED)]
    # stored with a stand-in answer, so the history keeps alternating
    assert await history(rig) == [("user", "hello"), ("assistant", STOPPED_EMPTY)]


@pytest.mark.parametrize("where", ["writer", "model"])
async def test_an_unexpected_exception_gets_an_apology_and_is_reported(
    rig: Rig, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    caplog.set_level(logging.INFO)
    if where == "writer":
        writer: Writer = BrokenWriter()
    else:
        writer = Writer()
        rig.model.fail_with = ValueError("model bug")
    await rig.ask("my secret question", writer=writer)
    assert await rig.queue.drain(10) == 0

    assert writer.finals[-1] == ("", SORRY), "no question goes unanswered without a reason"
    assert writer.closed
    ((failed_turn, exc),) = rig.failures
    assert failed_turn.text == "my secret question"
    assert isinstance(exc, RuntimeError if where == "writer" else ValueError)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "bot.turns.queue"
    assert type(exc).__name__ in record.getMessage()
    assert str(KEY.chat_id) in record.getMessage()
    assert "secret" not in record.getMessage()
    assert record.exc_info is not None, "the traceback, to find the bug"
    assert await rig.journalled() == 0, "the user was told: no notice after a restart"

    # the conversation is not left stuck: the next turn is answered
    rig.model.fail_with = None
    after = await rig.ask("again")
    assert await rig.queue.drain(10) == 0
    assert after.finals == [("Re: again", None)]
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


async def test_a_failed_answer_leaves_no_stream_behind(rig: Rig) -> None:
    rig.model.hold()  # a long answer: its stream outlives the writer's failure
    writer = await rig.ask("long", writer=BrokenWriter())
    assert await rig.queue.drain(10) == 0
    assert writer.finals == [("", SORRY)]
    await until(lambda: rig.model.closed_early == 1, "the model's stream to be closed")
    rig.model.release()
    seen = len(writer.updates)
    after = await rig.ask("next")
    assert await rig.queue.drain(10) == 0
    assert after.finals == [("Re: next", None)]
    assert len(writer.updates) == seen, "nothing more was written after the apology"


async def test_a_failing_failed_hook_still_lets_the_user_hear(
    redis_client: aioredis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = build(redis_client, Keys(key_prefix, BOT_ID), Model())

    def broken_hook(turn: Turn, exc: Exception) -> None:
        raise LookupError("metrics bug")

    rig.queue._on_failed = broken_hook
    writer = await rig.ask("q", writer=BrokenWriter())
    assert await rig.queue.drain(10) == 0
    assert writer.finals == [("", SORRY)]
    assert any("failed-answer hook failed" in r.getMessage() for r in caplog.records)


async def test_drain_waits_for_queued_turns_and_those_queued_meanwhile(rig: Rig) -> None:
    rig.model.hold()
    writers = [await rig.ask(q) for q in ("one", "two")]
    await until(lambda: rig.model.asked == ["one"], "the first request")
    assert await rig.queue.drain(0.05) == 1, "one conversation still busy"

    draining = asyncio.create_task(rig.queue.drain(10))
    late = await rig.ask("late", OTHER)
    assert not draining.done()
    rig.model.release()
    assert await draining == 0
    assert [w.finals for w in (*writers, late)] == [
        [("Re: one", None)],
        [("Re: two", None)],
        [("Re: late", None)],
    ]
    assert rig.queue.in_flight == 0


async def test_nothing_is_left_of_a_conversation_once_it_is_idle(rig: Rig) -> None:
    # The old core kept an epoch for every conversation whose queued turns a /stop
    # dropped; here a conversation's state must go with its last turn.
    writers: list[weakref.ref[Writer]] = []
    for n in range(20):
        key = ConversationKey(9000 + n)
        rig.model.hold()
        first = await rig.ask("first", key)
        dropped = await rig.ask("dropped", key)
        await until(lambda first=first: bool(first.updates), "an answer under way")
        assert rig.queue.stop(key)
        rig.model.release()
        writers += [weakref.ref(first), weakref.ref(dropped)]
        del first, dropped
    assert await rig.queue.drain(10) == 0
    assert rig.queue._lines == {}, "no conversation is remembered once idle"
    gc.collect()
    assert [ref for ref in writers if ref() is not None] == [], "no writer is kept"
    for n in range(20):
        key = ConversationKey(9000 + n)
        assert (rig.queue.waiting(key), rig.queue.asker(key)) == (0, None)
    assert rig.outcomes.count(("dropped", Outcome.SKIPPED)) == 20
    assert await rig.journalled() == 0


async def test_stored_turns_are_messages_of_parts(rig: Rig) -> None:
    await rig.queue.submit(Turn(KEY, (TextPart("hi"),), user_id=USER, speaker="Ann"), Writer())
    assert await rig.queue.drain(10) == 0
    context = await rig.store.load_context(KEY, 10**6)
    assert context.messages == [
        Message.of_text("user", "Ann: hi"),
        Message.of_text("assistant", "Re: Ann: hi"),
    ]
