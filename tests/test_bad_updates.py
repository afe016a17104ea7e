"""An update aiogram cannot read, in a polling batch: it costs only itself. It is counted
(glmbot_updates_rejected), logged by id and reason without its content, confirmed by the
next getUpdates, and the other updates of its batch and the later ones are answered.
Without this, aiogram fetches the same batch again forever and logs it whole at ERROR."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.harness import BotHarness, running_bot

USER = 3301
MARKER = "hunter2-private-words"


def bad_key_update(h: BotHarness) -> dict[str, Any]:
    """A message with a lone surrogate in a key: valid JSON, which aiogram's models refuse."""
    chat = h.tg.chat(USER).as_dict()
    message = {"message_id": 900, "date": 0, "chat": chat, "text": MARKER, "\ud800x": 1}
    return {"message": message}


def bad_shape_update(h: BotHarness) -> dict[str, Any]:
    """A message whose message_id is not a number."""
    chat = h.tg.chat(USER).as_dict()
    return {"message": {"message_id": MARKER, "date": 0, "chat": chat, "text": MARKER}}


def rejected(h: BotHarness) -> float | None:
    value: float | None = h.app.metrics.registry.get_sample_value("glmbot_updates_rejected_total")
    return value


def delivered_at(h: BotHarness, update_id: int) -> float:
    moment: float = h.tg.timeline.updates[update_id]["delivered_at"]
    return moment


def assert_content_unlogged(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    captured = capsys.readouterr()
    assert MARKER not in caplog.text + captured.err + captured.out
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_bad_update_costs_only_itself(
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.private_text(USER, "Hello?")  # makes the chat known
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        # no await in between: one getUpdates answer carries both
        bad = h.tg.push_update(bad_key_update(h))
        good = h.tg.private_text(USER, "Still there?")
        await h.wait_for_messages(USER, 2)
        assert delivered_at(h, bad) == delivered_at(h, good)
        h.tg.private_text(USER, "And now?")
        await h.wait_for_messages(USER, 3)
        await h.wait_idle()
        assert rejected(h) == 1
        asked = [r["messages"][-1]["content"] for r in h.glm.requests]
        assert asked == ["Hello?", "Still there?", "And now?"]
        assert h.tg.pending_updates() == 0
    assert f"update {bad} rejected, unreadable: string_unicode at message" in caplog.text
    assert_content_unlogged(caplog, capsys)


async def test_a_bad_update_last_in_its_batch_is_confirmed_and_not_read_again(
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.private_text(USER, "Hello?")
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        good = h.tg.private_text(USER, "First")
        bad = h.tg.push_update(bad_shape_update(h))
        await h.wait_for_messages(USER, 2)
        assert delivered_at(h, bad) == delivered_at(h, good)
        # aiogram confirms only up to the good update; the next poll must pass the bad one
        await h.tg.wait_for(
            lambda: any(
                (call.params.get("offset") or 0) > bad for call in h.tg.calls_of("getUpdates")
            ),
            what="a getUpdates confirming the bad update",
        )
        await h.tg.wait_for(lambda: h.tg.pending_updates() == 0, what="nothing pending")
        h.tg.private_text(USER, "Second")
        await h.wait_for_messages(USER, 3)
        await h.wait_idle()
        assert rejected(h) == 1
        asked = [r["messages"][-1]["content"] for r in h.glm.requests]
        assert asked == ["Hello?", "First", "Second"]
    assert f"update {bad} rejected, unreadable: int_parsing at message.message_id" in caplog.text
    assert_content_unlogged(caplog, capsys)


async def test_a_batch_of_only_bad_updates_is_skipped(
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.private_text(USER, "Hello?")
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        h.tg.push_update(bad_key_update(h))
        h.tg.push_update(bad_shape_update(h))
        await h.tg.wait_for(lambda: rejected(h) == 2, what="both rejected")
        h.tg.private_text(USER, "Anyone?")
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert rejected(h) == 2
        assert h.texts(USER) == ["Hello from GLM!", "Hello from GLM!"]
    assert_content_unlogged(caplog, capsys)
