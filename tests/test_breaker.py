"""The circuit breaker in front of the chat model (a scripted model, a manual clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.guards.breaker import BreakerState, CircuitBreakerModel
from bot.llm import ErrorKind, GLMError, GLMOptions, StreamEnd, StreamEvent, TextDelta

OPTIONS = GLMOptions(model="glm-4", max_tokens=16, temperature=0.5)
MESSAGES = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedModel:
    """Each request takes the next behaviour: "ok", a GLMError to raise, or "hang"."""

    def __init__(self) -> None:
        self.script: list[str | GLMError] = []
        self.calls = 0
        self.release = asyncio.Event()

    async def stream(
        self, messages: list[dict[str, str]], options: GLMOptions
    ) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, GLMError):
            raise step
        if step == "hang":
            await self.release.wait()
        yield TextDelta("hello")
        yield StreamEnd("stop", None)


def make(failures: int = 3) -> tuple[CircuitBreakerModel, ScriptedModel, Clock]:
    model, clock = ScriptedModel(), Clock()
    breaker = CircuitBreakerModel(model, failures=failures, window=60, cooldown=30, clock=clock)
    return breaker, model, clock


async def ask(breaker: CircuitBreakerModel) -> list[StreamEvent]:
    return [event async for event in breaker.stream(MESSAGES, OPTIONS)]


async def fail(breaker: CircuitBreakerModel, model: ScriptedModel, kind: ErrorKind) -> None:
    model.script.append(GLMError(kind, "scripted"))
    with pytest.raises(GLMError) as caught:
        await ask(breaker)
    assert caught.value.kind is kind


async def test_opens_after_consecutive_failures_and_refuses_at_once() -> None:
    breaker, model, _ = make(failures=3)
    for kind in (ErrorKind.SERVER, ErrorKind.TIMEOUT):
        await fail(breaker, model, kind)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker, model, ErrorKind.RATE_LIMITED)
    assert breaker.state is BreakerState.OPEN

    with pytest.raises(GLMError) as caught:
        await ask(breaker)
    assert caught.value.kind is ErrorKind.UNAVAILABLE
    assert model.calls == 3, "an open breaker does not call the model"


async def test_success_or_a_healthy_refusal_resets_the_count() -> None:
    breaker, model, _ = make(failures=2)
    await fail(breaker, model, ErrorKind.NETWORK)
    await ask(breaker)
    await fail(breaker, model, ErrorKind.STALLED)
    await fail(breaker, model, ErrorKind.FILTERED)  # GLM answered: it is up
    await fail(breaker, model, ErrorKind.OVERLOADED)
    assert breaker.state is BreakerState.CLOSED


async def test_failures_outside_the_window_do_not_add_up() -> None:
    breaker, model, clock = make(failures=2)
    await fail(breaker, model, ErrorKind.SERVER)
    clock.now += 61
    await fail(breaker, model, ErrorKind.SERVER)
    assert breaker.state is BreakerState.CLOSED
    await fail(breaker, model, ErrorKind.SERVER)
    assert breaker.state is BreakerState.OPEN


async def test_half_open_lets_one_trial_through_and_closes_on_success() -> None:
    breaker, model, clock = make(failures=1)
    await fail(breaker, model, ErrorKind.SERVER)
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN

    model.script.append("hang")
    trial = asyncio.create_task(ask(breaker))
    await asyncio.sleep(0)  # the trial is admitted and waits for GLM
    with pytest.raises(GLMError) as caught:
        await ask(breaker)
    assert caught.value.kind is ErrorKind.UNAVAILABLE, "only one trial at a time"

    model.release.set()
    assert [type(e) for e in await trial] == [TextDelta, StreamEnd]
    assert breaker.state is BreakerState.CLOSED
    await ask(breaker)
    assert model.calls == 3


async def test_a_failed_trial_opens_for_another_cooldown() -> None:
    breaker, model, clock = make(failures=1)
    await fail(breaker, model, ErrorKind.SERVER)
    clock.now += 30
    await fail(breaker, model, ErrorKind.TIMEOUT)
    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    with pytest.raises(GLMError):
        await ask(breaker)
    assert model.calls == 2


async def test_a_stopped_trial_gives_no_verdict_and_frees_the_slot() -> None:
    breaker, model, clock = make(failures=1)
    await fail(breaker, model, ErrorKind.SERVER)
    clock.now += 30
    model.script.append("hang")
    trial = asyncio.create_task(ask(breaker))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert breaker.state is BreakerState.HALF_OPEN
    await ask(breaker)  # the next request is the trial
    assert breaker.state is BreakerState.CLOSED


async def test_stopping_after_text_counts_as_healthy() -> None:
    breaker, model, _ = make(failures=2)
    await fail(breaker, model, ErrorKind.SERVER)
    stream = breaker.stream(MESSAGES, OPTIONS)
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    await fail(breaker, model, ErrorKind.SERVER)
    assert breaker.state is BreakerState.CLOSED


async def test_zero_failures_turns_it_off() -> None:
    breaker, model, _ = make(failures=0)
    for _ in range(10):
        await fail(breaker, model, ErrorKind.SERVER)
    assert model.calls == 10
