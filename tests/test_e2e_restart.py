"""A bot process killed in the middle of an answer, then a new one on the same Redis."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from bot.storage.keys import ConversationKey, Keys
from tests.bot_process import BotProcess, bot_env
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.harness import API_KEY, make_settings, start_bot

USER = 1001
QUESTION = "Explain monads, slowly please"
# Fast liveness marks, and a lost answer is reported as soon as its process is gone.
RELIABILITY = {"heartbeat": 0.2, "pending_grace": 0.0}


async def test_an_answer_cut_by_a_crash_is_reported_and_history_stays_whole(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    slow = Reply(tokens=[f"w{i} " for i in range(200)], token_interval=0.05)
    async with FakeTelegram() as tg, FakeGLM(default=Reply(text="Fresh answer.")) as glm:
        glm.script(slow)
        env = bot_env(
            tg,
            glm,
            api_key=API_KEY,
            redis_url=redis_url,
            key_prefix=key_prefix,
            RELIABILITY__HEARTBEAT="0.2",
        )
        async with BotProcess(env, tmp_path / "bot.log") as doomed:
            await tg.wait_for(
                lambda: bool(tg.calls_of("getUpdates")), timeout=120, what="bot process polling"
            )
            tg.private_text(USER, QUESTION)
            await tg.wait_for(
                lambda: any(c.params.get("text") for c in tg.calls_of("sendMessageDraft")),
                timeout=30,
                what="the answer streaming",
            )
            await doomed.kill()
        assert not tg.chat_messages(USER), "the answer never got its final message"

        settings = make_settings(tg, glm, redis_url, key_prefix, reliability=RELIABILITY)
        async with start_bot(settings) as app:
            await tg.wait_for(
                lambda: any("restarted" in m.text for m in tg.chat_messages(USER)),
                what="lost-answer notice",
            )
            (notice,) = tg.chat_messages(USER)
            assert QUESTION in notice.text, "the notice quotes the lost question"

            tg.private_text(USER, "hello again")
            await tg.wait_for(
                lambda: tg.chat_messages(USER)[-1].text == "Fresh answer.", what="next answer"
            )
            assert len(glm.requests) == 2, "the redelivered update was not answered again"
            assert glm.requests[-1]["messages"] == [{"role": "user", "content": "hello again"}], (
                "no dangling question of the cut answer"
            )
            assert not glm.violations
            assert await app.store.length(ConversationKey(USER)) == 2
        pending = Keys(key_prefix, tg.bot_id).bot_scoped("pending")
        assert await redis_client.hlen(pending) == 0, "nothing left to report"
