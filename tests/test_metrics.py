"""/metrics, /healthz and /readyz of a running bot, scraped over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from bot.observability.health import Readiness
from bot.observability.http import ObservabilityServer
from tests.conftest import RedisProcess
from tests.fakes.glm import Reply
from tests.harness import running_bot

USER = 4001


@asynccontextmanager
async def endpoints(app: App) -> AsyncIterator[str]:
    """The app's observability endpoints on a free port; yields the base URL."""
    server = ObservabilityServer(app.metrics, app.readiness)
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


async def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        body: dict[str, Any] = await resp.json()
        return resp.status, body


async def test_metrics_after_answers(redis_url: str, key_prefix: str) -> None:
    reply = Reply(tokens=["Hello ", "there, ", "friend."], first_token_delay=0.1)
    async with running_bot(redis_url, key_prefix, reply=reply) as h, endpoints(h.app) as base:
        h.tg.fail_next("sendChatAction", error_code=429, retry_after=1)
        h.tg.private_text(USER, "Hi")
        await h.tg.wait_for(lambda: h.last_text(USER) == "Hello there, friend.", what="answer")
        await h.wait_idle()
        h.glm.script(Reply(status=429, code="1113", message="arrears"))
        h.tg.private_text(USER, "Again")
        await h.tg.wait_for(lambda: len(h.tg.chat_messages(USER)) == 2, what="error reply")
        await h.wait_idle()
        registry = h.app.metrics.registry
        await h.tg.wait_for(
            lambda: registry.get_sample_value("glmbot_answers_total", {"outcome": "failed"}) == 1,
            what="the failed answer recorded",
        )

        samples = await scrape(base)

    assert value(samples, "glmbot_updates_total", type="message", outcome="handled") == 2
    assert value(samples, "glmbot_answers_total", outcome="completed") == 1
    assert value(samples, "glmbot_answers_total", outcome="failed") == 1
    assert value(samples, "glmbot_answers_in_flight") == 0
    # both answers reached GLM; the first token came after the scripted 0.1 s
    assert value(samples, "glmbot_answer_first_token_seconds_count") == 1
    assert 0.1 <= value(samples, "glmbot_answer_first_token_seconds_sum") < 5
    assert value(samples, "glmbot_answer_first_visible_seconds_count") >= 1
    first_visible = value(samples, "glmbot_answer_first_visible_seconds_sum")
    assert 0.1 <= first_visible < 10
    assert value(samples, "glmbot_answer_duration_seconds_count", outcome="completed") == 1
    assert value(samples, "glmbot_answer_telegram_calls_count") == 2
    assert value(samples, "glmbot_answer_telegram_calls_sum") >= 2
    assert value(samples, "glmbot_glm_errors_total", kind="no_balance", code="1113") == 1
    assert value(samples, "glmbot_glm_tokens_total", model="glm-4.7-flash", kind="prompt") > 0
    assert value(samples, "glmbot_glm_tokens_total", model="glm-4.7-flash", kind="completion") > 0
    assert value(samples, "glmbot_telegram_calls_total", method="sendMessage", result="ok") >= 2
    assert value(samples, "glmbot_telegram_429_total", method="sendChatAction") == 1
    assert value(samples, "glmbot_telegram_calls_total", method="getMe", result="ok") >= 1
    assert not [name for name, _ in samples if name == "glmbot_redis_errors_total"]


async def test_healthz_and_readyz(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h, endpoints(h.app) as base:
        assert await get_json(f"{base}/healthz") == (200, {"status": "ok"})
        status, body = await get_json(f"{base}/readyz")
        assert status == 200
        assert body == {"ready": True, "checks": {"redis": "ok", "telegram": "ok", "glm": "ok"}}


async def test_readyz_fails_while_redis_is_down(own_redis: RedisProcess, key_prefix: str) -> None:
    async with (
        running_bot(own_redis.url, key_prefix, metrics={"readiness_cache": 0}) as h,
        endpoints(h.app) as base,
    ):
        assert (await get_json(f"{base}/readyz"))[0] == 200
        own_redis.stop()
        status, body = await get_json(f"{base}/readyz")
        assert status == 503
        assert body["checks"] == {"redis": "down", "telegram": "ok", "glm": "ok"}
        assert (await get_json(f"{base}/healthz"))[0] == 200  # alive all the same
        samples = await scrape(base)
        assert value(samples, "glmbot_redis_errors_total", operation="ping") >= 1

        own_redis.start()
        assert (await get_json(f"{base}/readyz"))[0] == 200


async def test_readiness_is_cached_and_a_failing_check_is_down() -> None:
    now = [100.0]
    calls: list[str] = []

    async def fine() -> bool:
        calls.append("fine")
        return True

    async def broken() -> bool:
        calls.append("broken")
        raise ConnectionError("unreachable")

    readiness = Readiness({"a": fine, "b": broken}, cache_seconds=5, clock=lambda: now[0])
    assert await readiness.check() == {"a": True, "b": False}
    now[0] += 4
    assert await readiness.check() == {"a": True, "b": False}
    assert len(calls) == 2  # reused
    now[0] += 2
    results = await asyncio.gather(readiness.check(), readiness.check())
    assert results[0] == results[1] == {"a": True, "b": False}
    assert len(calls) == 4  # one new round for two concurrent probes
