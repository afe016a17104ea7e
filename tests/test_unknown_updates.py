"""Updates of a type the bot does not know (issue 14.9): a self-hosted or newer Bot API
can send them. They are counted and dropped, in polling and webhook mode, with nothing
of their content on stderr, in the log or in a warning, and the bot keeps answering."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from tests.harness import running_bot
from tests.webhook_updates import private_text_update, webhook_bot

USER = 3201
MARKER = "hunter2-private-words"


def unknown_updates() -> list[dict[str, Any]]:
    """Shaped like a future type: a key aiogram has no field for. The lone surrogate made
    aiogram's own warning fail to print."""
    return [
        {"future_event": {"chat": {"id": USER}, "text": f"{MARKER} \ud800"}},
        {"future_list": [MARKER]},
    ]


def unknown_count(registry: Any) -> float | None:
    value: float | None = registry.get_sample_value("glmbot_updates_unknown_total")
    return value


def assert_quiet(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
) -> None:
    captured = capsys.readouterr()
    assert MARKER not in caplog.text + captured.err + captured.out
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    # recorded here, a warning never reached stderr: look at the warnings themselves
    assert not [str(w.message) for w in recwarn if "update" in str(w.message).lower()]


async def test_polling_counts_and_drops_an_unknown_update(
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(redis_url, key_prefix) as h:
        for update in unknown_updates():
            h.tg.push_update(update, filtered=False)
        h.tg.private_text(USER, "Still there?")
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        assert h.texts(USER) == ["Hello from GLM!"]
        assert unknown_count(h.app.metrics.registry) == 2
        assert [r["messages"][-1]["content"] for r in h.glm.requests] == ["Still there?"]
    assert "dropped: unknown type 'future_event'" in caplog.text
    assert_quiet(caplog, capsys, recwarn)


async def test_webhook_acknowledges_counts_and_drops_an_unknown_update(
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
) -> None:
    caplog.set_level(logging.INFO)
    async with webhook_bot(redis_url, key_prefix) as w:
        headers = {"X-Telegram-Bot-Api-Secret-Token": w.secret}
        async with aiohttp.ClientSession() as session:
            for update_id, update in enumerate(unknown_updates(), start=1):
                # a valid update: acknowledged, or Telegram would send it again and again
                update["update_id"] = update_id
                async with session.post(w.url, json=update, headers=headers) as resp:
                    assert resp.status == 200
        registry = w.app.metrics.registry
        await w.tg.wait_for(lambda: unknown_count(registry) == 2, what="both counted")
        assert await w.tg.deliver_webhook(private_text_update(w.tg, USER, "Still there?")) == 200
        await w.tg.wait_for(lambda: len(w.tg.chat_messages(USER)) == 1, what="the answer")
        await w.tg.wait_for(lambda: w.app.turns.in_flight == 0, what="idle")
        assert [r["messages"][-1]["content"] for r in w.glm.requests] == ["Still there?"]
    assert_quiet(caplog, capsys, recwarn)
