"""Answers in the conversation's worker (`TurnQueue.submit`): handlers return at once, and
the answers keep their order, their /stop and their error reporting. The model is the real
GLM client streaming from the fake GLM server; history is the Redis store."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.history import RedisHistoryStore
from bot.llm import GLMClient
from bot.messages import TextPart
from bot.models import ModelCatalog, ModelSpec
from bot.observability.metrics import Metrics
from bot.storage.keys import ConversationKey, Keys
from bot.texts import text
from bot.turns.answer import Answerer
from bot.turns.queue import TurnQueue
from bot.turns.types import AnswerResult, Outcome, Turn
from tests.fakes.glm import FakeGLM, Reply
from tests.harness import small_glm_client

KEY = ConversationKey(4242)
USER = 77


class RecordingWriter:
    first_visible_at: float | None = None
    api_calls = 0

    def __init__(self) -> None:
        self.final: str | None = None
        self.footer: str | None = None
        self.closed = False

    async def begin(self) -> None:
        pass

    def update(self, markdown: str) -> None:
        pass

    def think(self, reasoning: str) -> None:
        pass

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        self.final, self.footer = markdown, footer

    async def aclose(self) -> None:
        self.closed = True


class BrokenWriter(RecordingWriter):
    """A bug in delivery: what no part of the answer expects."""

    async def begin(self) -> None:
        raise RuntimeError("writer bug")


class Rig:
    def __init__(self, llm: GLMClient, glm: FakeGLM, store: RedisHistoryStore) -> None:
        self.glm = glm
        self.metrics = Metrics()
        self.outcomes: list[tuple[str, Outcome]] = []
        answerer = Answerer(
            store=store,
            model=llm,
            models=ModelCatalog([ModelSpec("glm-4", 8192 + 512, 512, temperature=0.5)], "glm-4"),
            on_answered=self._answered,
        )
        self.turns = TurnQueue(answerer, on_failed=self.metrics.answer_failed)

    async def _answered(self, turn: Turn, result: AnswerResult) -> None:
        self.outcomes.append((turn.text, result.outcome))

    async def ask(self, question: str, writer: RecordingWriter | None = None) -> RecordingWriter:
        writer = writer or RecordingWriter()
        await self.turns.submit(Turn(KEY, (TextPart(question),), user_id=USER), writer)
        return writer

    def answer_errors(self) -> float:
        return self.metrics.registry.get_sample_value("glmbot_answer_errors_total") or 0.0


@pytest.fixture
async def rig(redis_client: aioredis.Redis, key_prefix: str) -> AsyncIterator[Rig]:
    async with FakeGLM() as glm:
        llm = small_glm_client(glm)
        rig = Rig(llm, glm, RedisHistoryStore(redis_client, Keys(key_prefix, 42)))
        try:
            yield rig
        finally:
            await rig.turns.drain(10)
            await llm.aclose()


def echo(body: dict[str, Any]) -> Reply:
    return Reply(text=f"Re: {body['messages'][-1]['content']}")


async def test_submit_returns_at_once_and_drain_waits_for_the_answer(rig: Rig) -> None:
    rig.glm.set_responder(lambda body: Reply(text="Hi", first_token_delay=0.2))
    writer = await rig.ask("hello")
    assert writer.final is None, "answered in the worker, not in submit"
    await rig.glm.wait_for(lambda: rig.turns.is_answering(KEY), what="the answer to start")
    assert rig.turns.waiting(KEY) == 0, "the running turn does not wait"
    assert await rig.turns.drain(10) == 0
    assert (writer.final, writer.closed) == ("Hi", True)
    assert rig.outcomes == [("hello", Outcome.COMPLETED)]


async def test_turns_submitted_one_after_another_are_answered_in_that_order(rig: Rig) -> None:
    rig.glm.set_responder(echo)
    for question in ("one", "two", "three"):
        await rig.ask(question)
    await rig.glm.wait_for(lambda: rig.turns.is_answering(KEY), what="the first answer")
    assert rig.turns.waiting(KEY) == 2
    assert await rig.turns.drain(10) == 0
    asked = [request["messages"] for request in rig.glm.requests]
    assert [messages[-1]["content"] for messages in asked] == ["one", "two", "three"]
    # each saw the ones before it in its context
    assert asked[2][:4] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Re: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Re: two"},
    ]


async def test_a_stop_drops_the_turn_queued_behind_the_answer(rig: Rig) -> None:
    rig.glm.set_responder(
        lambda body: Reply(tokens=[f"w{i} " for i in range(100)], token_interval=0.02)
    )
    first = await rig.ask("first")
    await rig.glm.wait_for(lambda: len(rig.glm.requests) == 1, what="the first request")
    second = await rig.ask("second")
    assert rig.turns.stop(KEY)
    assert await rig.turns.drain(10) == 0
    await rig.glm.wait_cancelled(1)
    assert rig.outcomes == [("first", Outcome.STOPPED), ("second", Outcome.SKIPPED)]
    assert first.footer == text("stopped")
    assert (second.final, second.footer) == ("", text("dropped_by_stop"))
    assert len(rig.glm.requests) == 1
    # a turn submitted after the /stop is answered
    rig.glm.set_responder(echo)
    await rig.ask("third")
    assert await rig.turns.drain(10) == 0
    assert rig.outcomes[-1] == ("third", Outcome.COMPLETED)


async def test_an_unexpected_exception_is_logged_counted_and_apologised_for(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rig.glm.set_responder(echo)
    broken = await rig.ask("my secret question", BrokenWriter())
    assert await rig.turns.drain(10) == 0
    assert broken.closed
    assert broken.footer == text("unexpected_error")
    assert rig.answer_errors() == 1
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "bot.turns.queue"
    assert "RuntimeError" in record.getMessage()
    assert str(KEY.chat_id) in record.getMessage()
    assert "secret" not in record.getMessage()
    assert record.exc_info is not None  # the traceback, to find the bug
    # the conversation is not left stuck: the next turn is answered
    await rig.ask("again")
    assert await rig.turns.drain(10) == 0
    assert rig.outcomes == [("again", Outcome.COMPLETED)]
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
