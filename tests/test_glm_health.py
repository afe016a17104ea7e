"""/readyz and a rejected GLM key: down after an authentication failure, until a GLM
request succeeds. The real GLM client against the fake GLM server, wired by hand as the
composition root wires it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.llm import ErrorKind, GLMError, GLMOptions, StreamEnd, StreamEvent
from bot.observability.health import GLMHealth, Readiness
from bot.observability.http import ObservabilityServer
from bot.observability.metrics import Metrics
from tests.fakes.glm import FakeGLM, Reply
from tests.harness import small_glm_client

OPTIONS = GLMOptions(model="glm-4", max_tokens=100, temperature=0.5)
QUESTION = [{"role": "user", "content": "Hello?"}]


async def _readyz(session: aiohttp.ClientSession, port: int) -> tuple[int, Any]:
    async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return resp.status, await resp.json()


async def _ask(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


async def test_readiness_reports_glm_down_after_a_rejected_key_until_a_request_succeeds() -> None:
    async with FakeGLM(default=Reply(text="Fine, thanks.")) as glm:
        client = small_glm_client(glm)
        health = GLMHealth()
        model = health.watch(client)
        readiness = Readiness({}, glm=health, cache_seconds=0)
        server = ObservabilityServer(Metrics(), readiness)
        port = await server.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                assert await _readyz(http, port) == (200, {"ready": True, "checks": {"glm": "ok"}})

                glm.script(Reply(status=401, code="1002", message="invalid API key"))
                with pytest.raises(GLMError) as failed:
                    await _ask(model.stream(QUESTION, OPTIONS))
                assert failed.value.kind is ErrorKind.AUTH
                down = (503, {"ready": False, "checks": {"glm": "down"}})
                assert await _readyz(http, port) == down

                # another kind of failure says nothing about the key: still down
                glm.script(Reply(status=400, code="1214", message="bad request"))
                with pytest.raises(GLMError) as other:
                    await _ask(model.stream(QUESTION, OPTIONS))
                assert other.value.kind is ErrorKind.BAD_REQUEST
                assert await _readyz(http, port) == down

                events = await _ask(model.stream(QUESTION, OPTIONS))
                assert isinstance(events[-1], StreamEnd)
                assert await _readyz(http, port) == (200, {"ready": True, "checks": {"glm": "ok"}})
        finally:
            await server.stop()
            await client.aclose()


async def test_an_answer_stopped_by_the_user_does_not_count_as_a_success() -> None:
    async with FakeGLM(default=Reply(tokens=["a", "b", "c"])) as glm:
        client = small_glm_client(glm)
        health = GLMHealth()
        model = health.watch(client)
        try:
            health.observe_failure(ErrorKind.AUTH)
            stream = model.stream(QUESTION, OPTIONS)
            await anext(stream)  # the first text arrives, then /stop
            await stream.aclose()  # type: ignore[attr-defined]
            assert await health.ready() is False
            await _ask(model.stream(QUESTION, OPTIONS))
            assert await health.ready() is True
        finally:
            await client.aclose()
