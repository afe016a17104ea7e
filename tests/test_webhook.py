"""Webhook mode end to end: the real aiohttp server and aiogram's webhook handler, the
fake Telegram posting updates to it, the fake GLM, real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.cluster.leases import RedisLeases
from bot.config.ops import derived_webhook_secret
from bot.storage.keys import ConversationKey, Keys
from tests.fakes.glm import Reply
from tests.webhook_updates import PATH, private_text_update, webhook_bot

USER = 3001


async def test_registers_the_webhook_and_answers_in_the_background(
    redis_url: str, key_prefix: str
) -> None:
    slow = Reply(text="Fine, thanks.", first_token_delay=0.5)
    async with webhook_bot(redis_url, key_prefix, reply=slow) as w:
        assert w.tg.webhook_url == f"{w.url}"
        assert w.url.endswith(PATH)
        # no TELEGRAM_WEBHOOK_SECRET: derived from the token, the same in every replica
        assert w.tg.webhook_secret == derived_webhook_secret(w.tg.token) == w.secret
        (call,) = w.tg.calls_of("setWebhook")
        assert "message" in call.params["allowed_updates"]
        assert not call.params.get("drop_pending_updates")

        status = await w.tg.deliver_webhook(private_text_update(w.tg, USER, "How are you?"))
        assert status == 200
        # Telegram got its answer before GLM even started to answer
        assert w.glm.completed == 0
        await w.tg.wait_for(
            lambda: [m.text for m in w.tg.chat_messages(USER)] == ["Fine, thanks."],
            what="the answer",
        )
        await w.tg.wait_for(lambda: w.app.turns.in_flight == 0, what="idle")
        assert w.glm.requests[0]["messages"] == [{"role": "user", "content": "How are you?"}]


@pytest.mark.parametrize("header", [None, "wrong-secret", ""])
async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_processed(
    redis_url: str, key_prefix: str, header: str | None
) -> None:
    async with webhook_bot(redis_url, key_prefix) as w:
        headers = {} if header is None else {"X-Telegram-Bot-Api-Secret-Token": header}
        refused = private_text_update(w.tg, USER, "Let me in")
        refused["update_id"] = 1
        async with (
            aiohttp.ClientSession() as session,
            session.post(w.url, json=refused, headers=headers) as resp,
        ):
            assert resp.status == 401
        # a genuine update afterwards is answered, and it is the only thing GLM ever saw
        assert await w.tg.deliver_webhook(private_text_update(w.tg, USER, "Hello")) == 200
        await w.tg.wait_for(lambda: len(w.tg.chat_messages(USER)) == 1, what="the answer")
        await w.tg.wait_for(lambda: w.app.turns.in_flight == 0, what="idle")
        assert [r["messages"][-1]["content"] for r in w.glm.requests] == ["Hello"]
        assert len(w.tg.chat_messages(USER)) == 1


async def test_an_explicit_secret_is_used(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "my_Secret-1")
    async with webhook_bot(redis_url, key_prefix) as w:
        assert w.tg.webhook_secret == "my_Secret-1"
        status = await w.tg.deliver_webhook(private_text_update(w.tg, USER, "Hi"))
        assert status == 200
        await w.tg.wait_for(lambda: len(w.tg.chat_messages(USER)) == 1, what="the answer")


async def test_metrics_can_share_the_webhook_port(redis_url: str, key_prefix: str) -> None:
    async with webhook_bot(redis_url, key_prefix, metrics_port=None) as w:
        base = w.url.removesuffix(PATH)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base}/healthz") as health,
            session.get(f"{base}/metrics") as metrics,
        ):
            assert health.status == 200
            assert "glmbot_updates_total" in await metrics.text()


def test_webhook_mode_without_public_url_is_a_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import main

    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("[telegram]\nmode = 'webhook'\n")
    monkeypatch.setenv("BOT_SETTINGS", str(settings_file))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "42:SECRET-PART")
    monkeypatch.setenv("ZHIPU_API_KEY", "id.secret")
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glmbot: configuration error: WEBHOOK__PUBLIC_URL: required")
    assert "\n" not in err


async def test_with_leases_a_command_does_not_hold_up_the_next_question(
    redis_url: str, key_prefix: str
) -> None:
    # the command reserves a place on arrival like any text; no turn claims it, so it is
    # given up when the command is handled, long before the lease ttl
    async with webhook_bot(redis_url, key_prefix, leases={"enabled": "on", "ttl": 30}) as w:
        assert w.app.leases is not None
        assert await w.tg.deliver_webhook(private_text_update(w.tg, USER, "/help")) == 200
        assert await w.tg.deliver_webhook(private_text_update(w.tg, USER, "Question")) == 200
        await w.tg.wait_for(lambda: len(w.tg.chat_messages(USER)) == 2, timeout=5, what="both")
        assert w.tg.chat_messages(USER)[-1].text == "Hello from GLM!"
        assert w.app.leases.waiting(ConversationKey(USER)) == 0


async def test_with_leases_an_answer_keeps_the_place_its_update_took_on_arrival(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis
) -> None:
    # The handler only starts the answer; the update's handling then ends, long before
    # the answer's turn comes. The place the update took on arrival must not be given up
    # then: a message that reached another replica later would jump the queue.
    key = ConversationKey(USER)
    async with webhook_bot(redis_url, key_prefix, leases={"enabled": "on", "ttl": 30}) as w:
        leases = w.app.leases
        assert leases is not None
        other = RedisLeases(redis_client, Keys(key_prefix, w.tg.bot_id), ttl=30)
        seen_by_later: list[list[str]] = []
        try:
            async with other.hold(key):  # the other replica is answering in this chat
                update = private_text_update(w.tg, USER, "First")
                assert await w.tg.deliver_webhook(update) == 200
                await w.tg.wait_for(lambda: leases.waiting(key) == 1, what="the turn queued")
                labels = {"type": "message", "outcome": "handled"}
                await w.tg.wait_for(
                    lambda: (
                        w.app.metrics.registry.get_sample_value("glmbot_updates_total", labels) == 1
                    ),
                    what="the handler returned",
                )
                later = await other.reserve(key)  # a later message, at the other replica

            async def later_turn() -> None:
                with other.reserved(later):
                    async with other.hold(key):
                        seen_by_later.append([m.text for m in w.tg.chat_messages(USER)])

            await asyncio.wait_for(later_turn(), 10)
        finally:
            await other.aclose()
        assert seen_by_later == [["Hello from GLM!"]]
        # one ticket each: the other's answer, "First" (on arrival), the later message
        seq = Keys(key_prefix, w.tg.bot_id).chat_scoped(USER, "t0:lease:seq")
        assert int(await redis_client.get(seq)) == 3
