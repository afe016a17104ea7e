"""A private chat, end to end: real dispatcher in polling mode, fake Telegram, fake GLM,
real Redis."""

from __future__ import annotations

import pytest

from tests.fakes.glm import Reply
from tests.harness import running_bot

USER = 1001


async def test_two_turns_remembered_then_reset(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(Reply(text="Hello Bob, nice to meet you."), Reply(text="Your name is Bob."))

        h.tg.private_text(USER, "Hi, I'm Bob")
        await h.tg.wait_for(lambda: "nice to meet you" in h.last_text(USER), what="first answer")
        await h.wait_idle()

        h.tg.private_text(USER, "What's my name?")
        await h.tg.wait_for(lambda: h.last_text(USER) == "Your name is Bob.", what="2nd answer")

        assert h.glm_messages(0) == [{"role": "user", "content": "Hi, I'm Bob"}]
        assert h.glm_messages(1) == [
            {"role": "user", "content": "Hi, I'm Bob"},
            {"role": "assistant", "content": "Hello Bob, nice to meet you."},
            {"role": "user", "content": "What's my name?"},
        ]
        assert h.glm.headers[0]["Authorization"] == "Bearer test-key-id.test-key-secret"
        await h.wait_idle()

        h.tg.private_text(USER, "/reset")
        await h.tg.wait_for(lambda: "forgotten" in h.last_text(USER), what="reset reply")
        h.glm.script(Reply(text="Who are you?"))
        h.tg.private_text(USER, "Do you know me?")
        await h.tg.wait_for(lambda: h.last_text(USER) == "Who are you?", what="fresh answer")
        assert h.glm_messages() == [{"role": "user", "content": "Do you know me?"}]
        assert not h.glm.violations


@pytest.mark.parametrize("method", ["draft", "edit"])
async def test_answer_streams_progressively(redis_url: str, key_prefix: str, method: str) -> None:
    pieces = [f"word{i} " for i in range(30)]
    reply = Reply(tokens=pieces, token_interval=0.03)
    async with running_bot(
        redis_url, key_prefix, reply=reply, telegram={"private_stream_method": method}
    ) as h:
        h.tg.private_text(USER, "Count for me")
        full = "".join(pieces).strip()
        await h.tg.wait_for(lambda: h.last_text(USER) == full, what="full answer")

        # typing was shown while waiting for the first token
        assert h.tg.calls_of("sendChatAction")
        if method == "draft":
            drafts = [d for (chat, _), d in h.tg.drafts.items() if chat == USER]
            assert len(drafts) == 1, "one draft_id for the whole answer"
            assert len(drafts[0].texts) >= 2, "the draft grew as tokens arrived"
            assert drafts[0].can_stop
            assert len(h.tg.chat_messages(USER)) == 1
        else:
            (message,) = h.tg.chat_messages(USER)
            assert len(message.history) >= 2, "the message was edited as the answer grew"
            assert message.history[0] != full


async def test_start_help_and_unsupported_input(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.private_text(USER, "/start")
        await h.wait_for_messages(USER, 1)
        assert "/reset" in h.last_text(USER)
        h.tg.private_text(USER, "/help")
        await h.wait_for_messages(USER, 2)
        assert "/reset" in h.last_text(USER)
        h.tg.push_message(
            {
                "chat": {"id": USER, "type": "private", "first_name": "Alice"},
                "from": {"id": USER, "is_bot": False, "first_name": "Alice"},
                "sticker": {
                    "file_id": "s1",
                    "file_unique_id": "u1",
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                },
            }
        )
        await h.wait_for_messages(USER, 3)
        assert "text" in h.last_text(USER)
        assert not h.glm.requests, "commands and stickers never reach GLM"


async def test_history_survives_a_restart(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="Noted: 42.")) as h:
        h.tg.private_text(USER, "Remember 42")
        await h.tg.wait_for(lambda: h.last_text(USER) == "Noted: 42.", what="answer")
        await h.wait_idle()
    async with running_bot(redis_url, key_prefix, reply=Reply(text="It was 42.")) as h:
        h.tg.private_text(USER, "What number?")
        await h.tg.wait_for(lambda: h.last_text(USER) == "It was 42.", what="answer")
        assert [m["content"] for m in h.glm_messages()] == [
            "Remember 42",
            "Noted: 42.",
            "What number?",
        ]


async def test_glm_failure_is_reported_and_not_stored(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, llm={"retry_attempts": 2}) as h:
        h.glm.script(
            Reply(status=500, code="500", message="internal"),
            Reply(status=500, code="500", message="internal"),
            Reply(text="Back again."),
        )
        h.tg.private_text(USER, "Hello?")
        await h.tg.wait_for(lambda: "GLM" in h.last_text(USER), what="error notice")
        await h.wait_idle()
        assert len(h.glm.requests) == 2, "retried within the bound, then gave up"

        h.tg.private_text(USER, "Hello again?")
        await h.tg.wait_for(lambda: h.last_text(USER) == "Back again.", what="next answer")
        assert h.glm_messages() == [{"role": "user", "content": "Hello again?"}], (
            "the failed turn was not stored"
        )


async def test_second_message_waits_for_the_first(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(
            Reply(tokens=["slow ", "first ", "answer"], token_interval=0.2),
            Reply(text="second answer"),
        )
        h.tg.private_text(USER, "one")
        await h.glm.wait_for(lambda: len(h.glm.requests) == 1, what="first request")
        h.tg.private_text(USER, "two")
        await h.tg.wait_for(lambda: h.last_text(USER) == "second answer", what="both answers")
        assert h.texts(USER) == ["slow first answer", "second answer"]
        assert [m["content"] for m in h.glm_messages(1)] == ["one", "slow first answer", "two"]


async def test_redis_outage_is_reported_then_recovered(own_redis, key_prefix: str) -> None:  # type: ignore[no-untyped-def]
    async with running_bot(own_redis.url, key_prefix, reply=Reply(text="ok")) as h:
        h.tg.private_text(USER, "first")
        await h.tg.wait_for(lambda: h.last_text(USER) == "ok", what="first answer")
        await h.wait_idle()

        own_redis.stop()
        h.tg.private_text(USER, "during outage")
        await h.tg.wait_for(
            lambda: "temporarily unavailable" in h.last_text(USER), timeout=20, what="notice"
        )
        await h.wait_idle()
        own_redis.start()

        h.tg.private_text(USER, "after outage")
        await h.tg.wait_for(
            lambda: len(h.texts(USER)) == 3 and h.last_text(USER) == "ok", what="recovered"
        )
        assert [m["content"] for m in h.glm_messages()] == ["first", "ok", "after outage"]


async def test_runs_without_redis_in_memory(key_prefix: str) -> None:
    async with running_bot(None, key_prefix, reply=Reply(text="memory ok")) as h:
        h.tg.private_text(USER, "hi")
        await h.tg.wait_for(lambda: h.last_text(USER) == "memory ok", what="answer")
        await h.wait_idle()
        h.tg.private_text(USER, "again")
        await h.tg.wait_for(lambda: len(h.glm.requests) == 2, what="second request")
        assert len(h.glm_messages()) == 3
