"""Streaming as users meet it, end to end: Stop, long answers, odd Markdown, queues."""

from __future__ import annotations

from bot.storage.keys import ConversationKey
from tests.fakes.glm import Reply
from tests.fakes.telegram import Limits
from tests.harness import BotHarness, running_bot

USER = 2002
GROUP = -100777
ASKER, OTHER, ADMIN = 11, 12, 13
BOT = "@glm_test_bot"


def slow_reply(count: int = 200, interval: float = 0.05) -> Reply:
    return Reply(tokens=[f"w{i} " for i in range(count)], token_interval=interval)


def _draft_of(h: BotHarness, chat_id: int) -> tuple[int, list[str]]:
    ((draft_id, draft),) = [(d, v) for (c, d), v in h.tg.drafts.items() if c == chat_id]
    return draft_id, draft.texts


async def test_stop_button_on_a_draft_cancels_and_keeps_the_partial_answer(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=slow_reply()) as h:
        h.tg.private_text(USER, "tell me a long story")
        await h.tg.wait_for(
            lambda: any(c == USER and d.texts for (c, _), d in h.tg.drafts.items()),
            what="a draft with text",
        )
        draft_id, _ = _draft_of(h, USER)
        h.tg.stop_generation(USER, draft_id)

        await h.glm.wait_cancelled(1)
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        final = h.last_text(USER)
        assert "Stopped" in final
        partial = final.split("\n")[0].strip()
        assert partial.startswith("w0")
        assert len(partial.split()) < 200, "the stream was cut, not completed"

        h.glm.script(Reply(text="ok"))
        h.tg.private_text(USER, "continue")
        await h.tg.wait_for(lambda: h.last_text(USER) == "ok", what="next answer")
        stored_answer = h.glm_messages()[1]
        assert stored_answer["role"] == "assistant"
        assert stored_answer["content"].strip() == partial


async def test_group_stop_is_for_the_asker_and_admins(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=slow_reply()) as h:
        h.tg.set_member(GROUP, ADMIN, "administrator")
        h.tg.group_text(
            GROUP, ASKER, f"{BOT} go", entities=[{"type": "mention", "offset": 0, "length": 13}]
        )
        await h.wait_for_messages(GROUP, 1)
        streaming = h.tg.chat_messages(GROUP)[0]
        assert streaming.reply_markup, "a Stop button under the streaming answer"

        h.tg.press_button(GROUP, streaming.message_id, OTHER, "stop", first_name="Mallory")
        await h.tg.wait_for(lambda: bool(h.tg.callback_answers), what="refusal")
        assert h.app.turns.is_answering(ConversationKey(GROUP))

        h.tg.group_text(GROUP, ASKER, "/stop")
        await h.glm.wait_cancelled(1)
        await h.wait_idle()
        final = h.tg.chat_messages(GROUP)[0]
        assert "Stopped" in final.text
        assert not final.reply_markup, "the Stop button is removed at the end"


async def test_stop_clears_queued_messages(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=slow_reply()) as h:
        h.tg.private_text(USER, "first")
        await h.glm.wait_for(lambda: len(h.glm.requests) == 1, what="first request")
        h.tg.private_text(USER, "second, queued")
        await h.tg.wait_for(
            lambda: h.app.turns.waiting(ConversationKey(USER)) == 1,
            what="second message queued",
        )
        h.tg.private_text(USER, "/stop")
        await h.wait_idle()
        assert len(h.glm.requests) == 1, "the queued message was dropped by /stop"


async def test_long_answer_with_code_block_spanning_the_split(
    redis_url: str, key_prefix: str
) -> None:
    code = "\n".join(f"    x_{i} = {i} * 2  # <&>" for i in range(160))
    prose = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor " * 12 for i in range(24))
    answer = f"{prose}\n\n```python\n{code}\n```\n\nDone."
    assert len(answer) > 9000
    pieces = [answer[i : i + 200] for i in range(0, len(answer), 200)]
    async with running_bot(
        redis_url,
        key_prefix,
        reply=Reply(tokens=pieces, token_interval=0.005),
        telegram={"private_stream_method": "edit"},
    ) as h:
        h.tg.private_text(USER, "write a lot")
        await h.tg.wait_for(lambda: h.last_text(USER).endswith("Done."), what="answer end")
        await h.wait_idle()
        messages = h.tg.chat_messages(USER)
        assert len(messages) >= 3
        for message in messages:
            assert len(message.text.encode("utf-16-le")) // 2 <= 4096
        joined = "\n".join(m.text for m in messages)
        assert "x_0 = 0 * 2  # <&>" in joined
        assert "x_159 = 159 * 2  # <&>" in joined
        code_parts = [m for m in messages if any(e["type"] == "pre" for e in m.entities)]
        assert len(code_parts) >= 2, "the code block continues in the next message"
        for message in code_parts:
            pres = [e for e in message.entities if e["type"] == "pre"]
            assert all(e.get("language") == "python" for e in pres)
        assert not [c for c in h.tg.calls if not c.ok and c.error_code == 400]


async def test_unclosed_markdown_mid_stream_never_fails_to_parse(
    redis_url: str, key_prefix: str
) -> None:
    tokens = ["Here **bold", " and `code", " and ```py\nprint(1)", "\n``` and _it", "alic_ end"]
    async with running_bot(
        redis_url,
        key_prefix,
        reply=Reply(tokens=tokens, token_interval=0.25),
        telegram={"private_stream_method": "edit"},
    ) as h:
        h.tg.private_text(USER, "markdown please")
        await h.tg.wait_for(lambda: h.last_text(USER).endswith("end"), what="final text")
        await h.wait_idle()
        (message,) = h.tg.chat_messages(USER)
        assert len(message.history) >= 2, "the partial Markdown was shown while streaming"
        refused = [c for c in h.tg.calls if not c.ok and "parse" in (c.description or "")]
        assert not refused
        assert "print(1)" in message.text


async def test_group_streaming_under_flood_limits_never_shows_an_error(
    redis_url: str, key_prefix: str
) -> None:
    # The fake enforces Telegram's one message per second per chat while the bot is set
    # to edit five times a second, and the first edit is refused with a 429 as well.
    limits = Limits(per_chat_interval=1.0, group_per_minute=20, retry_after=1)
    async with running_bot(
        redis_url, key_prefix, reply=slow_reply(60, 0.03), fake_telegram={"limits": limits}
    ) as h:
        h.tg.fail_next("editMessageText", error_code=429, retry_after=1)
        h.tg.group_text(
            GROUP, ASKER, f"{BOT} go", entities=[{"type": "mention", "offset": 0, "length": 13}]
        )
        full = " ".join(f"w{i}" for i in range(60))
        await h.tg.wait_for(lambda: h.last_text(GROUP) == full, timeout=20, what="full answer")
        await h.wait_idle()
        assert h.tg.rejected_429() >= 1
        assert all("retry" not in t.lower() and "flood" not in t.lower() for t in h.texts(GROUP))


async def test_deleted_message_mid_stream_continues_in_a_new_one(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=slow_reply(80, 0.03)) as h:
        h.tg.group_text(
            GROUP, ASKER, f"{BOT} go", entities=[{"type": "mention", "offset": 0, "length": 13}]
        )
        await h.wait_for_messages(GROUP, 1)
        h.tg.delete_message(GROUP, h.tg.chat_messages(GROUP)[0].message_id)
        await h.wait_idle(timeout=20)
        remaining = h.tg.chat_messages(GROUP)
        assert remaining, "the answer went on in a new message"
        assert remaining[-1].text.endswith("w79")
