"""Nothing is dropped without a word (issue 14.4): questions /stop clears from the line
each get one short line, and a question cut to fit the prompt says so under its answer."""

from __future__ import annotations

from typing import Any

from bot.storage.keys import ConversationKey
from bot.texts import text
from tests.fakes.glm import Reply
from tests.harness import BotHarness, running_bot

USER = 3401
GROUP = -100341
ASKER, OTHER = 41, 42
BOT = "@glm_test_bot"
DROPPED = text("dropped_by_stop", "en")


def slow_reply() -> Reply:
    return Reply(tokens=[f"w{i} " for i in range(200)], token_interval=0.05)


def mention() -> list[dict[str, Any]]:
    return [{"type": "mention", "offset": 0, "length": len(BOT)}]


async def queue_behind_first(h: BotHarness, key: ConversationKey, ask: Any) -> list[int]:
    """Ask three questions: the first is answered (slowly), two wait in line."""
    ask("first")
    await h.glm.wait_for(lambda: len(h.glm.requests) == 1, what="the first request")
    ids = [ask("second"), ask("third")]
    await h.tg.wait_for(lambda: h.app.turns.waiting(key) == 2, what="two questions queued")
    return ids


async def test_private_questions_dropped_by_stop_are_told(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=slow_reply()) as h:
        await queue_behind_first(h, ConversationKey(USER), lambda q: h.tg.private_text(USER, q))
        h.tg.private_text(USER, "/stop")
        await h.glm.wait_cancelled(1)
        await h.wait_idle()
        await h.wait_for_messages(USER, 3)
        assert len(h.glm.requests) == 1, "the queued questions were not answered"
        stopped, *dropped = h.texts(USER)
        assert stopped.startswith("w0")
        assert "Stopped" in stopped
        assert dropped == [DROPPED, DROPPED]


async def test_group_questions_dropped_by_stop_are_told_each(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=slow_reply()) as h:

        def ask(question: str) -> int:
            h.tg.group_text(GROUP, ASKER, f"{BOT} {question}", entities=mention())
            return h.tg.chat(GROUP).next_message_id - 1

        questions = await queue_behind_first(h, ConversationKey(GROUP), ask)
        h.tg.group_text(GROUP, ASKER, "/stop")
        await h.glm.wait_cancelled(1)
        await h.wait_idle()
        await h.wait_for_messages(GROUP, 3)
        assert len(h.glm.requests) == 1, "the queued questions were not answered"
        stopped, *dropped = h.tg.chat_messages(GROUP)
        assert "Stopped" in stopped.text
        assert [m.text for m in dropped] == [DROPPED, DROPPED]
        # each line answers its own question, so the group can tell which were dropped
        assert [m.reply_to_message_id for m in dropped] == questions


async def test_a_question_cut_to_fit_says_so(redis_url: str, key_prefix: str) -> None:
    question = " ".join(f"word{i}" for i in range(600))[:3500]
    assert len(question) == 3500
    async with running_bot(
        redis_url, key_prefix, llm={"context_tokens": 1024, "max_tokens": 256}
    ) as h:
        h.tg.private_text(USER, question)
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        answer, note = h.last_text(USER).rsplit("\n", 1)
        assert answer.strip() == "Hello from GLM!"
        assert note == text("question_truncated", "en")
        sent = h.glm_messages()[-1]["content"]
        assert question.startswith(sent)
        assert 1000 < len(sent) < len(question)
