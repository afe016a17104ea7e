"""How GLM answers end: streams cut short (issue 14.1), stalls before the first chunk
and the retry budget (14.2), and the finish reasons that mean failure (12.6). The real
SDK against the fake GLM over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bot.llm import ErrorKind, ReasoningDelta, StreamEnd, StreamEvent, TextDelta
from tests.fakes.glm import FakeGLM, Reply
from tests.llm_rig import ClientFactory, client_factory, collect, collect_until_error, text_of


@pytest.fixture
async def fake() -> AsyncIterator[FakeGLM]:
    async with FakeGLM() as server:
        yield server


@pytest.fixture
async def make_client(fake: FakeGLM) -> AsyncIterator[ClientFactory]:
    async with client_factory(fake) as make:
        yield make


# a body that ends without its end marker (issue 14.1)


async def test_a_body_ending_after_text_without_marker_is_interrupted(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    # the pause is shorter than the stall limit: only the missing end tells
    fake.script(Reply(text="one two three four", end_early_after=2, end_pause=0.3))
    events: list[StreamEvent] = []
    error = await collect_until_error(make_client(stall_timeout=2.0), events)
    assert error.kind is ErrorKind.NETWORK
    assert error.retryable  # (only ever retried before anything was yielded)
    assert text_of(events) == "one two"
    assert not any(isinstance(event, StreamEnd) for event in events)
    assert len(fake.requests) == 1, "text was yielded: no retry"


async def test_a_body_ending_before_anything_is_retried(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(text="lost", end_early_after=0), Reply(text="found"))
    events = await collect(make_client())
    assert text_of(events) == "found"
    assert events[-1] == StreamEnd("stop", events[-1].usage)
    assert events[-1].usage is not None
    assert len(fake.requests) == 2


async def test_a_body_ending_early_every_time_fails_within_the_attempts(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.set_responder(lambda body: Reply(text="lost", end_early_after=0))
    error = await collect_until_error(make_client(retry_attempts=3), [])
    # not a single chunk came: a server glitch rather than a cut answer, retried alike
    assert error.kind is ErrorKind.SERVER
    assert error.retryable
    assert len(fake.requests) == 3


async def test_a_body_ending_after_reasoning_only_is_interrupted(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(reasoning="thinking it over", text="x", end_early_after=0), Reply())
    events: list[StreamEvent] = []
    error = await collect_until_error(make_client(), events)
    assert error.kind is ErrorKind.NETWORK
    assert events
    assert all(isinstance(event, ReasoningDelta) for event in events)
    assert len(fake.requests) == 1, "reasoning was yielded: no retry"


async def test_a_finish_reason_without_done_is_a_complete_answer(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(text="all of it", send_done=False))
    events = await collect(make_client())
    assert text_of(events) == "all of it"
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].finish_reason == "stop"


# waiting for the first chunk (issue 14.2)


async def test_a_stall_after_headers_is_bounded_by_the_stall_limit(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(read_timeout=60.0, stall_timeout=0.3, retry_attempts=1)
    fake.script(Reply(stall_after=0))
    started = time.monotonic()
    error = await collect_until_error(client, [])
    assert error.kind is ErrorKind.TIMEOUT
    assert 0.25 < time.monotonic() - started < 3, "not the 60 s read timeout"
    await fake.wait_cancelled(1, timeout=2.0)


async def test_repeated_stalls_take_the_stall_limit_per_attempt(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    # LLM__STALL_TIMEOUT=5 with three attempts, scaled down: 3 x 0.3 s, not 3 x 60 s
    client = make_client(
        read_timeout=60.0, stall_timeout=0.3, retry_attempts=3, retry_max_seconds=20.0
    )
    fake.set_responder(lambda body: Reply(stall_after=0))
    started = time.monotonic()
    error = await collect_until_error(client, [])
    elapsed = time.monotonic() - started
    assert error.kind is ErrorKind.TIMEOUT
    assert len(fake.requests) == 3
    assert 0.85 < elapsed < 4


async def test_retries_of_stalls_stay_within_the_retry_budget(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(
        read_timeout=60.0, stall_timeout=0.4, retry_attempts=100, retry_max_seconds=1.0
    )
    fake.set_responder(lambda body: Reply(stall_after=0))
    started = time.monotonic()
    error = await collect_until_error(client, [])
    elapsed = time.monotonic() - started
    assert error.kind is ErrorKind.TIMEOUT
    assert 2 <= len(fake.requests) <= 4
    # the last retry is cut to the budget, not given a whole stall limit
    assert 0.9 < elapsed < 1.6


async def test_a_retry_waiting_for_headers_is_cut_to_the_budget(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(read_timeout=60.0, retry_attempts=3, retry_max_seconds=0.8)
    fake.script(Reply(status=500, code="500"), Reply(headers_delay=30), Reply())
    started = time.monotonic()
    error = await collect_until_error(client, [])
    assert error.kind is ErrorKind.TIMEOUT
    assert time.monotonic() - started < 2
    assert len(fake.requests) == 2
    await fake.wait_cancelled(1, timeout=2.0)


async def test_a_slow_first_chunk_within_the_limits_still_answers(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(text="late but fine", first_token_delay=0.4))
    client = make_client(stall_timeout=1.0, retry_attempts=1, retry_max_seconds=0.1)
    assert text_of(await collect(client)) == "late but fine"


# finish reasons (issue 12.6)


async def test_network_error_finish_after_text_is_interrupted(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(text="half an answer", finish_reason="network_error"), Reply())
    events: list[StreamEvent] = []
    error = await collect_until_error(make_client(), events)
    assert error.kind is ErrorKind.NETWORK
    assert text_of(events) == "half an answer"
    assert len(fake.requests) == 1


async def test_network_error_finish_after_reasoning_is_interrupted(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(reasoning="hmm", tokens=[], finish_reason="network_error"), Reply())
    events: list[StreamEvent] = []
    error = await collect_until_error(make_client(), events)
    assert error.kind is ErrorKind.NETWORK
    assert [type(event) for event in events] == [ReasoningDelta]
    assert len(fake.requests) == 1


@pytest.mark.parametrize("tokens", [[], ["some ", "text"]])
async def test_context_window_exceeded_is_prompt_too_long(
    fake: FakeGLM, make_client: ClientFactory, tokens: list[str]
) -> None:
    fake.script(Reply(tokens=tokens, finish_reason="model_context_window_exceeded"), Reply())
    events: list[StreamEvent] = []
    error = await collect_until_error(make_client(), events)
    assert error.kind is ErrorKind.PROMPT_TOO_LONG
    assert not error.retryable
    assert text_of(events) == "".join(tokens)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("reason", ["sensitive", "length"])
async def test_sensitive_and_length_after_reasoning_end_the_stream(
    fake: FakeGLM, make_client: ClientFactory, reason: str
) -> None:
    # length with no content: the reasoning used up max_tokens
    fake.script(Reply(reasoning="a long thought", tokens=[], finish_reason=reason))
    events = await collect(make_client())
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].finish_reason == reason
    assert not any(isinstance(event, TextDelta) for event in events)
    assert len(fake.requests) == 1
