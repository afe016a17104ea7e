"""Reasoning tokens in usage accounting: part of the output (charged at the output price),
also counted on their own, and estimated for an answer stopped while the model thought.
Against real Redis and the in-memory store."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from bot.guards.quotas import Limits, MemoryMeterStore, MeterStore, QuotaService, RedisMeterStore
from bot.guards.quotas.report import render_user_report
from bot.llm import Usage
from bot.messages import TextPart
from bot.models import ModelCatalog, ModelSpec, Prices
from bot.prompt.tokens import message_tokens
from bot.storage.keys import ConversationKey, Keys
from bot.turns.types import AnswerResult, Outcome, Turn

ALICE = 11
CATALOG = ModelCatalog(
    [ModelSpec("glm-5", 200_000, 32_768, prices=Prices(input=4, output=18))], default="glm-5"
)
TURN = Turn(ConversationKey(ALICE), (TextPart("why?"),), user_id=ALICE)


@pytest.fixture(params=["redis", "memory"])
async def quotas(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, key_prefix: str
) -> QuotaService:
    store: MeterStore = (
        RedisMeterStore(redis_client, Keys(key_prefix, 42))
        if request.param == "redis"
        else MemoryMeterStore()
    )
    return QuotaService(store, limits=Limits(), models=CATALOG)


async def test_reasoning_is_output_and_shown_on_its_own(quotas: QuotaService) -> None:
    usage = Usage(
        prompt_tokens=1000, completion_tokens=500, total_tokens=1500, reasoning_tokens=300
    )
    await quotas.on_answered(TURN, AnswerResult(Outcome.COMPLETED, usage=usage, model="glm-5"))
    await quotas.on_answered(TURN, AnswerResult(Outcome.COMPLETED, usage=usage, model="glm-5"))
    report = await quotas.user_report(ALICE)
    assert (report.today.completion, report.today.reasoning) == (1000, 600)
    # 2 x (1,000 x 4 + 500 x 18): the reasoning is in the 500 output tokens
    assert report.today.cost_micros == 26_000
    assert report.by_model[0][1].reasoning == 600
    shown = render_user_report(report, "en")
    assert "Today: 3,000 tokens (2,000 prompt + 1,000 answer, 600 of it reasoning)" in shown
    assert "其中思考 600" in render_user_report(report, "zh")


async def test_without_reasoning_the_report_does_not_mention_it(quotas: QuotaService) -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    await quotas.on_answered(TURN, AnswerResult(Outcome.COMPLETED, usage=usage, model="glm-5"))
    shown = render_user_report(await quotas.user_report(ALICE), "en")
    assert "Today: 15 tokens (10 prompt + 5 answer) in 1 request" in shown


async def test_an_answer_stopped_while_thinking_is_charged_an_estimate(
    quotas: QuotaService,
) -> None:
    reasoning = "Let me think about this carefully. " * 20
    result = AnswerResult(
        Outcome.STOPPED,
        reasoning=reasoning,
        model="glm-5",
        estimated_prompt_tokens=100,
        first_reasoning_at=time.monotonic(),
    )
    await quotas.on_answered(TURN, result)
    today = (await quotas.user_report(ALICE)).today
    assert today.reasoning == message_tokens(reasoning) > 0
    assert (today.prompt, today.completion) == (100, today.reasoning)
    assert today.cost_micros == 100 * 4 + today.reasoning * 18


async def test_reasoning_never_exceeds_the_output(quotas: QuotaService) -> None:
    await quotas.charge(ALICE, ALICE, 10, 5, model="glm-5", reasoning_tokens=50)
    today = (await quotas.user_report(ALICE)).today
    assert (today.completion, today.reasoning) == (5, 5)
