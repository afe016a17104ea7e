"""/readyz and a rejected GLM key: GLM is reported down after an answer failed on the
key, until an answer succeeds (issue 14.7). The whole bot against the fakes."""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.llm import ErrorKind
from bot.observability.health import GLMHealth
from bot.observability.http import ObservabilityServer
from bot.storage.keys import ConversationKey
from bot.turns.types import AnswerResult, Outcome, Turn
from tests.fakes.glm import Reply
from tests.harness import running_bot

USER = 5150
OK = (200, {"ready": True, "checks": {"redis": "ok", "telegram": "ok", "glm": "ok"}})
DOWN = (503, {"ready": False, "checks": {"redis": "ok", "telegram": "ok", "glm": "down"}})


async def _readyz(session: aiohttp.ClientSession, port: int) -> tuple[int, Any]:
    async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return resp.status, await resp.json()


async def test_readiness_reports_glm_down_after_a_rejected_key_until_an_answer_succeeds(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, metrics={"readiness_cache": 0}) as h:
        server = ObservabilityServer(h.app.metrics, h.app.readiness)
        port = await server.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as http:
                assert await _readyz(http, port) == OK

                h.glm.script(Reply(status=401, code="1002", message="invalid API key"))
                h.tg.private_text(USER, "hello?")
                await h.tg.wait_for(lambda: "unavailable" in h.last_text(USER), what="note")
                await h.wait_idle()
                assert await _readyz(http, port) == DOWN

                # another kind of failure says nothing about the key: still down
                h.glm.script(Reply(status=400, code="1214", message="bad request"))
                h.tg.private_text(USER, "and now?")
                await h.tg.wait_for(lambda: len(h.texts(USER)) == 2, what="second note")
                await h.wait_idle()
                assert await _readyz(http, port) == DOWN

                h.glm.script(Reply(text="Fine, thanks."))
                h.tg.private_text(USER, "again")
                await h.tg.wait_for(lambda: h.last_text(USER) == "Fine, thanks.", what="answer")
                await h.wait_idle()
                assert await _readyz(http, port) == OK
        finally:
            await server.stop()


async def test_an_answer_stopped_by_the_user_says_nothing_about_the_key() -> None:
    health = GLMHealth()
    turn = Turn(key=ConversationKey(USER), parts=(), user_id=USER)
    await health.on_answered(turn, AnswerResult(Outcome.FAILED, error=ErrorKind.AUTH))
    assert await health.ready() is False
    await health.on_answered(turn, AnswerResult(Outcome.STOPPED))
    assert await health.ready() is False
    await health.on_answered(turn, AnswerResult(Outcome.COMPLETED))
    assert await health.ready() is True
