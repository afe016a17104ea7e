"""Answers in tasks of their own (`ConversationService.start`): handlers return at once,
and the answers keep their order, their /stop and their error reporting. The model is the
real GLM client streaming from the fake GLM server."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bot.conversation import AnswerResult, ConversationService, DeliveryClaim, Outcome, Turn
from bot.locks import ConversationLocks

from bot.history import MemoryHistoryStore
from bot.llm import GLMClient, GLMOptions
from bot.observability.metrics import Metrics
from bot.storage.keys import ConversationKey
from tests.fakes.glm import FakeGLM, Reply
from tests.harness import small_glm_client

KEY = ConversationKey(4242)
USER = 77


class RecordingWriter:
    def __init__(self) -> None:
        self.final: str | None = None
        self.closed = False

    async def begin(self) -> None:
        pass

    def update(self, markdown: str) -> None:
        pass

    async def finish(self, markdown: str, *, footer: str | None = None) -> None:
        self.final = markdown

    async def aclose(self) -> None:
        self.closed = True


class BrokenWriter(RecordingWriter):
    """A bug in delivery: what no part of the answer expects."""

    async def begin(self) -> None:
        raise RuntimeError("writer bug")


class Rig:
    def __init__(self, llm: GLMClient, glm: FakeGLM) -> None:
        self.glm = glm
        self.metrics = Metrics()
        self.outcomes: list[tuple[str, Outcome]] = []
        self.conversation = ConversationService(
            store=MemoryHistoryStore(),
            model=llm,
            options=GLMOptions(model="glm-4", max_tokens=512, temperature=0.5),
            context_tokens=8192,
            on_answered=self._answered,
            on_failed=self.metrics.answer_failed,
        )

    async def _answered(self, turn: Turn, result: AnswerResult) -> None:
        self.outcomes.append((turn.text, result.outcome))

    async def start(
        self,
        question: str,
        writer: RecordingWriter | None = None,
        *,
        claim: DeliveryClaim | None = None,
    ) -> asyncio.Task[None]:
        turn = Turn(KEY, question, user_id=USER, claim=claim)
        return await self.conversation.start(turn, writer or RecordingWriter())

    def answer_errors(self) -> float:
        return self.metrics.registry.get_sample_value("glmbot_answer_errors_total") or 0.0


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeGLM() as glm:
        llm = small_glm_client(glm)
        try:
            yield Rig(llm, glm)
        finally:
            await llm.aclose()


def echo(body: dict[str, Any]) -> Reply:
    return Reply(text=f"Re: {body['messages'][-1]['content']}")


async def test_start_returns_at_once_and_drain_waits_for_the_answer(rig: Rig) -> None:
    rig.glm.set_responder(lambda body: Reply(text="Hi", first_token_delay=0.2))
    writer = RecordingWriter()
    task = await rig.start("hello", writer)
    assert not task.done()
    assert rig.conversation.waiting(KEY) == 0  # first in line, about to run
    assert await rig.conversation.drain(10) == 0
    assert task.done()
    assert task.exception() is None
    assert (writer.final, writer.closed) == ("Hi", True)
    assert rig.outcomes == [("hello", Outcome.COMPLETED)]


async def test_turns_started_one_after_another_are_answered_in_that_order(rig: Rig) -> None:
    rig.glm.set_responder(echo)
    for question in ("one", "two", "three"):
        await rig.start(question)
    assert rig.conversation.waiting(KEY) == 2
    assert await rig.conversation.drain(10) == 0
    asked = [request["messages"] for request in rig.glm.requests]
    assert [messages[-1]["content"] for messages in asked] == ["one", "two", "three"]
    # each saw the ones before it in its context
    assert asked[2][:4] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Re: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Re: two"},
    ]


async def test_places_keep_the_order_of_start_whatever_order_their_tasks_lock_in() -> None:
    # A turn may wait before it asks for the lock (its journal record, say): the place
    # it took when started keeps its order.
    locks = ConversationLocks()
    places = [locks.place(KEY) for _ in range(3)]
    assert locks.waiting(KEY) == 2
    ready = [asyncio.Event() for _ in places]
    reached = [asyncio.Event() for _ in places]
    idle: dict[int, bool] = {}
    order: list[int] = []

    async def turn(n: int) -> None:
        async with places[n]:
            await ready[n].wait()
            idle[n] = locks.idle(KEY)
            reached[n].set()
            async with locks.hold(KEY):
                order.append(n)

    tasks = [asyncio.create_task(turn(n)) for n in range(len(places))]
    for n in (2, 1):
        ready[n].set()
        await reached[n].wait()
    assert order == []  # both wait for the first place
    ready[0].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [0, 1, 2]
    # only the first in line would be granted the lock at once
    assert idle == {0: True, 1: False, 2: False}
    assert locks.idle(KEY)
    assert locks.waiting(KEY) == 0


async def test_a_place_left_unused_lets_the_next_turn_through() -> None:
    locks = ConversationLocks()
    first, second = locks.place(KEY), locks.place(KEY)
    async with first:
        pass  # e.g. a repeated delivery, dropped before its turn came
    assert locks.waiting(KEY) == 0
    async with second:
        assert locks.idle(KEY)
        await asyncio.wait_for(_hold_once(locks), 5)
    assert locks.idle(KEY)


async def _hold_once(locks: ConversationLocks) -> None:
    async with locks.hold(KEY):
        pass


class HeldClaim:
    """A `DeliveryClaim` whose outcome comes only when released."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    def rider(self) -> None:
        return None

    async def settle(self) -> bool:
        await self.released.wait()
        return True


async def test_a_stop_right_after_start_drops_the_turn_queued_then(rig: Rig) -> None:
    rig.glm.set_responder(
        lambda body: Reply(tokens=[f"w{i} " for i in range(100)], token_interval=0.02)
    )
    await rig.start("first")
    await rig.glm.wait_for(lambda: len(rig.glm.requests) == 1, what="the first request")
    # The second turn, behind the first, waits before it even asks for the lock (here
    # for its delivery claim; with Redis, for its journal record too).
    claim = HeldClaim()
    await rig.start("second", claim=claim)
    # a /stop now drops it with the first
    assert rig.conversation.stop(KEY)
    claim.released.set()
    assert await rig.conversation.drain(10) == 0
    assert rig.outcomes == [("first", Outcome.STOPPED), ("second", Outcome.SKIPPED)]
    assert len(rig.glm.requests) == 1
    # a turn started after the /stop is answered
    rig.glm.set_responder(echo)
    await rig.start("third")
    assert await rig.conversation.drain(10) == 0
    assert rig.outcomes[-1] == ("third", Outcome.COMPLETED)


async def test_an_unexpected_exception_is_logged_and_counted_not_lost(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rig.glm.set_responder(echo)
    broken = BrokenWriter()
    task = await rig.start("my secret question", broken)
    assert await rig.conversation.drain(10) == 0
    assert task.exception() is None  # nothing left for "Task exception was never retrieved"
    assert broken.closed
    assert rig.answer_errors() == 1
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "bot.conversation"
    assert "RuntimeError" in record.getMessage()
    assert str(KEY.chat_id) in record.getMessage()
    assert "secret" not in record.getMessage()
    assert record.exc_info is not None  # the traceback, to find the bug
    # the conversation is not left locked: the next turn is answered
    await rig.start("again")
    assert await rig.conversation.drain(10) == 0
    assert rig.outcomes == [("again", Outcome.COMPLETED)]
    del task
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
