"""GLM's finish reasons other than `stop`, end to end: what the user is told, and that the
history sent back to the model stays consistent (a question with its answer, or neither).

`sensitive` ends the stream (the answer is marked filtered, kept out of later context);
`network_error` and `model_context_window_exceeded` make the client raise: the first is
retried while nothing was shown, the second is tried once more with a shorter prompt.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.glm import Reply
from tests.harness import BotHarness, running_bot

USER = 6006
GROUP = -100333
ALICE = 7
BOT = "@glm_test_bot"
FILTERED = "⚠️ This answer was blocked by the content filter."
INTERRUPTED = "⚠️ The answer was interrupted. Please ask again to continue."
NO_ANSWER = "⚠️ GLM did not answer this time. Please try again."
TOO_LONG = "⚠️ This message is too long for the model. Please shorten it."
# GLM's prompt counts left out (0 is ignored by the calibration): the cap then bounds the
# bot's own estimate, which is what decides how much history a prompt carries
NO_CALIBRATION = {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}


def ok(text: str = "ok") -> Reply:
    return Reply(text=text, usage=NO_CALIBRATION)


async def ask(h: BotHarness, question: str, chat: int = USER) -> str:
    """Ask, wait until the answer is over; the text of the bot's last message."""
    before = len(h.glm.requests)
    if chat == GROUP:
        entities = [{"type": "mention", "offset": 0, "length": len(BOT)}]
        h.tg.group_text(GROUP, ALICE, f"{BOT} {question}", first_name="Alice", entities=entities)
    else:
        h.tg.private_text(USER, question)
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()
    return h.last_text(chat)


def contents(body: dict[str, Any]) -> list[str]:
    return [message["content"] for message in body["messages"]]


async def test_a_filtered_answer_is_marked_and_kept_out_of_the_context(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=ok()) as h:
        await ask(h, "hello")
        h.glm.script(Reply(text="Something the filter", finish_reason="sensitive"))
        assert await ask(h, "say something bad") == f"Something the filter\n\n{FILTERED}"
        await ask(h, "and now?")
        assert contents(h.glm.requests[-1]) == ["hello", "ok", "and now?"]

        h.glm.script(Reply(text="", tokens=[], finish_reason="sensitive"))
        assert await ask(h, "bad again", chat=GROUP) == FILTERED
        await ask(h, "fine?", chat=GROUP)
        assert contents(h.glm.requests[-1]) == ["Alice: fine?"]


async def test_network_error_before_any_text_is_retried(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=ok()) as h:
        h.glm.script(Reply(text="", tokens=[], finish_reason="network_error"), ok("Retried."))
        assert await ask(h, "hello") == "Retried."
        assert len(h.glm.requests) == 2, "the failed generation was asked again"
        await ask(h, "next")
        assert contents(h.glm.requests[-1]) == ["hello", "Retried.", "next"]


async def test_network_error_after_text_is_marked_interrupted(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=ok()) as h:
        await ask(h, "hello")
        h.glm.script(Reply(text="The first half", finish_reason="network_error"))
        assert await ask(h, "tell me more") == f"The first half\n\n{INTERRUPTED}"
        assert len(h.glm.requests) == 2, "text was shown: not asked again"

        # reasoning shown, no answer text: not retried either, and the user told
        h.glm.script(
            Reply(reasoning="Hmm, let me see.", text="", tokens=[], finish_reason="network_error")
        )
        assert await ask(h, "think about it") == f"Hmm, let me see.\n\n{NO_ANSWER}"

        await ask(h, "again")
        assert contents(h.glm.requests[-1]) == ["hello", "ok", "again"], (
            "neither broken exchange came back as context"
        )


async def test_a_prompt_too_long_for_the_window_is_retried_once_shorter(
    redis_url: str, key_prefix: str
) -> None:
    exceeded = Reply(text="", tokens=[], finish_reason="model_context_window_exceeded")
    async with running_bot(redis_url, key_prefix, reply=ok(), llm={"context_tokens": 600}) as h:
        earlier = [f"question {i}: " + "tell me about tea. " * 20 for i in range(4)]
        for question in earlier:
            await ask(h, question)
        full = len(h.glm.requests[-1]["messages"])

        h.glm.script(exceeded, ok("Shorter worked."))
        assert await ask(h, "one more") == "Shorter worked."
        first, second = h.glm.requests[-2:]
        assert contents(first)[-1] == contents(second)[-1] == "one more"
        assert len(second["messages"]) < len(first["messages"]) <= full + 2, "trimmed harder"
        assert len(second["messages"]) >= 1

        await ask(h, "and then?")
        after = contents(h.glm.requests[-1])
        assert after[-3:] == ["one more", "Shorter worked.", "and then?"]
        assert after.count("one more") == 1, "the retried question is stored once"

        h.glm.script(exceeded, exceeded)
        assert await ask(h, "too much") == TOO_LONG
        assert len(h.glm.requests[-1]["messages"]) < len(h.glm.requests[-2]["messages"])
        await ask(h, "last")
        after = contents(h.glm.requests[-1])
        assert "too much" not in after
        assert after[-3:] == ["and then?", "ok", "last"]
