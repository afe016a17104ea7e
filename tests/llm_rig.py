"""Small helpers for GLMClient tests: a client factory on a fake GLM and ways to read
its stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.llm import GLMClient, GLMError, GLMOptions, ReasoningDelta, StreamEvent, TextDelta
from tests.fakes.glm import FakeGLM

API_KEY = "0123456789abcdef.SeCrEtPaRt-98765"
OPTIONS = GLMOptions(model="glm-4.7", max_tokens=256, temperature=0.7)
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "my question about llamas"}]

ClientFactory = Callable[..., GLMClient]


@asynccontextmanager
async def client_factory(fake: FakeGLM) -> AsyncIterator[ClientFactory]:
    """Clients on ``fake`` (short timeouts, quick retries; override any setting), all
    closed at the end."""
    clients: list[GLMClient] = []

    def make(**overrides: Any) -> GLMClient:
        settings: dict[str, Any] = {
            "api_key": API_KEY,
            "base_url": fake.api_base,
            "max_concurrent": 4,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "stall_timeout": 5.0,
            "retry_attempts": 3,
            "retry_max_seconds": 1.0,
            "retry_initial_wait": 0.01,
        }
        settings.update(overrides)
        client = GLMClient(**settings)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


async def collect(
    client: GLMClient,
    messages: Sequence[Mapping[str, Any]] = MESSAGES,
    options: GLMOptions = OPTIONS,
) -> list[StreamEvent]:
    return [event async for event in client.stream(messages, options)]


async def collect_until_error(
    client: GLMClient,
    events: list[StreamEvent],
    messages: Sequence[Mapping[str, Any]] = MESSAGES,
    options: GLMOptions = OPTIONS,
) -> GLMError:
    """Consume a stream that must fail, keeping the events yielded before the failure."""

    async def consume() -> None:
        async for event in client.stream(messages, options):
            events.append(event)

    with pytest.raises(GLMError) as caught:
        await consume()
    return caught.value


def text_of(events: Sequence[StreamEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def reasoning_of(events: Sequence[StreamEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, ReasoningDelta))
