"""Thinking models, web search, the new options and image parts (issue 12.3, 12.4, 12.7):
the real SDK against the fake GLM over HTTP."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.llm import (
    GLMOptions,
    ReasoningDelta,
    SearchResult,
    SearchResults,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from tests.fakes.glm import FakeGLM, Reply, search_results
from tests.llm_rig import (
    MESSAGES,
    OPTIONS,
    ClientFactory,
    client_factory,
    collect,
    reasoning_of,
    text_of,
)

WEB_SEARCH_TOOL = {
    "type": "web_search",
    "web_search": {"enable": True, "search_engine": "search_std", "search_result": True},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGLM]:
    async with FakeGLM() as server:
        yield server


@pytest.fixture
async def make_client(fake: FakeGLM) -> AsyncIterator[ClientFactory]:
    async with client_factory(fake) as make:
        yield make


# reasoning


async def test_reasoning_streams_as_it_arrives_before_the_answer(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    thought = "The user asks about llamas. They are camelids."
    fake.script(Reply(reasoning=thought, reasoning_seconds=0.8, text="Llamas are camelids."))
    started = time.monotonic()
    arrivals: list[tuple[float, StreamEvent]] = []
    async for event in make_client().stream(MESSAGES, OPTIONS):
        arrivals.append((time.monotonic() - started, event))
    events = [event for _, event in arrivals]

    assert reasoning_of(events) == thought
    assert text_of(events) == "Llamas are camelids."
    kinds = [type(event) for event in events]
    assert kinds[0] is ReasoningDelta
    assert kinds.index(TextDelta) > max(i for i, k in enumerate(kinds) if k is ReasoningDelta)
    first_reasoning = arrivals[0][0]
    first_text = next(at for at, event in arrivals if isinstance(event, TextDelta))
    assert first_reasoning < 0.4, "reasoning is yielded at once, not held for the answer"
    assert first_text >= 0.75
    assert sum(isinstance(event, ReasoningDelta) for event in events) >= 2, "as it arrives"
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage is not None
    assert end.usage.reasoning_tokens > 0
    assert end.usage.completion_tokens > end.usage.reasoning_tokens


async def test_reasoning_tokens_are_read_from_completion_tokens_details(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 50,
        "total_tokens": 62,
        "completion_tokens_details": {"reasoning_tokens": 44},
    }
    fake.script(Reply(reasoning="hmm", text="Yes.", usage=usage))
    events = await collect(make_client())
    assert events[-1] == StreamEnd("stop", Usage(12, 50, 62, 44))


async def test_usage_without_details_has_no_reasoning_tokens(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(Reply(text="Yes.", usage={"prompt_tokens": 1, "completion_tokens": 1}))
    events = await collect(make_client())
    assert events[-1] == StreamEnd("stop", Usage(1, 1, 0, 0))


async def test_long_reasoning_is_no_stall_while_its_chunks_keep_coming(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    pieces = [f"step {i}. " for i in range(8)]
    fake.script(Reply(reasoning_pieces=pieces, reasoning_seconds=1.2, text="Done."))
    events = await collect(make_client(stall_timeout=0.5, read_timeout=0.5))
    assert reasoning_of(events) == "".join(pieces)
    assert text_of(events) == "Done."


async def test_a_slow_consumer_gets_reasoning_and_text_merged_in_order(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    thoughts = [f"r{i} " for i in range(5)]
    tokens = [f"t{i} " for i in range(5)]
    fake.script(
        Reply(reasoning_pieces=thoughts, reasoning_seconds=0.1, tokens=tokens, token_interval=0.01)
    )
    events: list[StreamEvent] = []
    async for event in make_client().stream(MESSAGES, OPTIONS):
        events.append(event)
        if len(events) == 1:
            await fake.wait_for(lambda: fake.completed == 1, 5.0, "the whole answer sent")
    kinds = [type(event) for event in events if not isinstance(event, StreamEnd)]
    switch = kinds.index(TextDelta)
    assert set(kinds[:switch]) == {ReasoningDelta}
    assert set(kinds[switch:]) == {TextDelta}
    assert len(kinds) < len(thoughts) + len(tokens), "what waited was merged"
    assert reasoning_of(events) == "".join(thoughts)
    assert text_of(events) == "".join(tokens)


# web search


@pytest.mark.parametrize("at", ["first", "last"])
async def test_web_search_results_become_one_event(
    fake: FakeGLM, make_client: ClientFactory, at: str
) -> None:
    fake.script(Reply(text="Llamas hum [ref_1].", web_search=search_results(2), web_search_at=at))
    events = await collect(make_client(), options=GLMOptions("glm-4.7", 256, 0.7, web_search=True))

    found = [event for event in events if isinstance(event, SearchResults)]
    assert found == [
        SearchResults(
            (
                SearchResult("Source 1", "https://example.com/1", "ref_1", "Site 1"),
                SearchResult("Source 2", "https://example.com/2", "ref_2", "Site 2"),
            )
        )
    ]
    assert text_of(events) == "Llamas hum [ref_1]."
    assert isinstance(events[-1], StreamEnd)
    assert events.index(found[0]) == (0 if at == "first" else len(events) - 2)
    assert fake.requests[0]["tools"] == [WEB_SEARCH_TOOL]
    assert fake.violations == []


async def test_a_whole_completion_carries_search_reasoning_and_text(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.script(
        Reply(reasoning="think", text="answer", web_search=search_results(1), json_body=True)
    )
    events = await collect(make_client())
    assert [type(event) for event in events] == [
        SearchResults,
        ReasoningDelta,
        TextDelta,
        StreamEnd,
    ]
    assert (reasoning_of(events), text_of(events)) == ("think", "answer")


# options


async def test_default_options_send_nothing_new(fake: FakeGLM, make_client: ClientFactory) -> None:
    await collect(make_client())
    body = fake.requests[0]
    assert body.get("thinking") is None  # the SDK sends null for an argument not given
    for name in ("tools", "reasoning_effort", "clear_thinking", "tool_stream"):
        assert name not in body


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"thinking": True}, {"thinking": {"type": "enabled"}}),
        ({"thinking": False}, {"thinking": {"type": "disabled"}}),
        (
            {"thinking": True, "clear_thinking": False},
            {"thinking": {"type": "enabled", "clear_thinking": False}},
        ),
        # clear_thinking means nothing without thinking
        ({"thinking": False, "clear_thinking": True}, {"thinking": {"type": "disabled"}}),
        ({"reasoning_effort": "high"}, {"thinking": None, "reasoning_effort": "high"}),
        (
            {"thinking": True, "reasoning_effort": "low", "web_search": True},
            {
                "thinking": {"type": "enabled"},
                "reasoning_effort": "low",
                "tools": [WEB_SEARCH_TOOL],
            },
        ),
    ],
)
async def test_options_reach_the_request_body(
    fake: FakeGLM,
    make_client: ClientFactory,
    options: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    await collect(make_client(), options=GLMOptions("glm-5.2", 256, 0.7, **options))
    body = fake.requests[0]
    assert {name: body.get(name) for name in expected} == expected
    assert fake.violations == []


# images


async def test_image_parts_reach_glm_and_the_callers_messages_stay_unchanged(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    messages = [
        {"role": "system", "content": "You describe images."},
        {"role": "user", "content": parts},
    ]
    before = copy.deepcopy(messages)
    events = await collect(make_client(), messages, GLMOptions("glm-4.6v-flash", 256, 0.5))

    assert text_of(events) == "Hello!"
    assert messages == before
    sent = fake.requests[0]["messages"]
    assert sent[0] == {"role": "system", "content": "You describe images."}
    # Zhipu takes raw base64: the SDK strips the data: prefix (in its own copy)
    assert sent[1]["content"] == [
        parts[0],
        {"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}},
    ]
    assert fake.timings[0]["user"] == "What is in this picture?"
    assert fake.violations == []


async def test_streams_run_side_by_side_with_reasoning(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.set_responder(
        lambda body: Reply(
            reasoning=f"about {body['messages'][-1]['content']}",
            reasoning_seconds=0.1,
            text=f"answer {body['messages'][-1]['content']}",
        )
    )
    client = make_client(max_concurrent=4)
    results = await asyncio.gather(
        *(collect(client, [{"role": "user", "content": f"q{i}"}]) for i in range(8))
    )
    for i, events in enumerate(results):
        assert (reasoning_of(events), text_of(events)) == (f"about q{i}", f"answer q{i}")
