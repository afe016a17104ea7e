"""A thinking model as users meet it, end to end: progress within a second of the first
reasoning chunk (a draft with the reasoning in private chats, one placeholder in groups),
then the answer with its reasoning folded above it, or left out; never in the history."""

from __future__ import annotations

from typing import Any

from bot.streaming.thinking import THINKING
from tests.fakes.glm import Reply, split_pieces
from tests.fakes.telegram import Limits
from tests.fakes.telegram_state import SentMessage
from tests.harness import BotHarness, running_bot

USER = 5005
GROUP = -100444
ALICE = 7
BOT = "@glm_test_bot"
REASONING = (
    "The user asks about tea. Tea is made from the leaves of Camellia sinensis. "
    "I should say where it comes from and keep it short."
)
ANSWER = "Tea is a drink made from the leaves of *Camellia sinensis*."
SHOWN_ANSWER = "Tea is a drink made from the leaves of Camellia sinensis."
# the time to the first sign of thinking, from GLM's first reasoning chunk
PROGRESS_WITHIN = 1.0


def thinker(**overrides: Any) -> Reply:
    """A model that reasons for 2 s, then streams its answer."""
    values: dict[str, Any] = {
        "reasoning": REASONING,
        "reasoning_seconds": 2.0,
        "text": ANSWER,
        "token_interval": 0.02,
    }
    return Reply(**(values | overrides))


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def assert_folded(message: SentMessage, reasoning: str = REASONING) -> None:
    """The reasoning in an expandable quote, then the answer, nothing else around them."""
    assert message.text == f"{reasoning}\n\n{SHOWN_ANSWER}"
    quote, *rest = message.entities
    assert quote == {"type": "expandable_blockquote", "offset": 0, "length": utf16(reasoning)}
    at = utf16(reasoning) + 2 + SHOWN_ANSWER.index("Camellia")
    assert rest == [{"type": "italic", "offset": at, "length": len("Camellia sinensis")}]


def progress_delay(h: BotHarness, chat: int) -> tuple[float, float]:
    """(first sign of thinking, first answer token), each after GLM's first reasoning chunk."""
    (timing,) = h.glm.timings[-1:]
    seen = h.tg.timeline.chats[chat].first_visible_at
    assert seen is not None
    return seen - timing["first_reasoning_at"], timing["first_token_at"] - seen


async def ask_private(h: BotHarness, text: str = "what is tea?") -> None:
    before = len(h.tg.chat_messages(USER))
    h.tg.private_text(USER, text)
    await h.wait_for_messages(USER, before + 1)
    await h.wait_idle()


async def ask_group(h: BotHarness, text: str = "what is tea?") -> None:
    before = len(h.glm.requests)
    entities = [{"type": "mention", "offset": 0, "length": len(BOT)}]
    h.tg.group_text(GROUP, ALICE, f"{BOT} {text}", first_name="Alice", entities=entities)
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()


def next_request_messages(h: BotHarness) -> list[dict[str, Any]]:
    return h.glm_messages()


async def test_private_draft_shows_the_reasoning_then_the_answer_folds_it(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=thinker()) as h:
        await ask_private(h)
        shown_after, before_answer = progress_delay(h, USER)
        assert shown_after < PROGRESS_WITHIN
        assert before_answer > 1.0, "the user saw progress while the model still thought"

        drafts = [text for (c, _), d in h.tg.drafts.items() if c == USER for text in d.texts]
        thinking = [text for text in drafts if text.startswith(THINKING)]
        assert len(thinking) >= 3, "the draft follows the reasoning as it grows"
        assert REASONING.startswith(thinking[0].removeprefix(THINKING).strip())
        assert thinking[-1].endswith("keep it short."), "the latest reasoning is shown"

        (final,) = h.tg.chat_messages(USER)
        assert_folded(final)
        assert not [c for c in h.tg.calls if not c.ok], "Telegram took every entity"

        h.glm.script(Reply(text="ok"))
        await ask_private(h, "and coffee?")
        assert next_request_messages(h) == [
            {"role": "user", "content": "what is tea?"},
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": "and coffee?"},
        ], "reasoning never goes back to the model"


async def test_group_gets_one_placeholder_then_the_answer_in_budget(
    redis_url: str, key_prefix: str
) -> None:
    limits = Limits(group_per_minute=20, retry_after=1)
    async with running_bot(
        redis_url, key_prefix, reply=thinker(), fake_telegram={"limits": limits}
    ) as h:
        await ask_group(h)
        shown_after, before_answer = progress_delay(h, GROUP)
        assert shown_after < PROGRESS_WITHIN
        assert before_answer > 1.0

        (answer,) = h.tg.chat_messages(GROUP)
        assert answer.history[0] == THINKING, "one placeholder message"
        assert answer.history.count(THINKING) == 1, "not edited while the model thinks"
        assert_folded(answer)
        assert all(REASONING not in text for text in answer.history[:-1]), (
            "a group sees the reasoning only folded in the final answer"
        )
        assert h.tg.rejected_429() == 0, "within the group's budget"
        assert 2 <= answer.edits + 1 <= 20

        await ask_group(h, "and coffee?")
        assert [m["content"] for m in next_request_messages(h)] == [
            "Alice: what is tea?",
            ANSWER,
            "Alice: and coffee?",
        ]


async def test_hidden_reasoning_is_left_out_of_the_answer(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=thinker(reasoning_seconds=0.5)) as h:
        h.tg.private_text(USER, "/reasoning hide")
        await h.wait_for_messages(USER, 1)
        await ask_private(h)
        final = h.tg.chat_messages(USER)[-1]
        assert final.text == SHOWN_ANSWER
        assert not [e for e in final.entities if "blockquote" in e["type"]]

        h.tg.set_member(GROUP, ALICE, "administrator")
        h.tg.group_text(GROUP, ALICE, "/reasoning hide")
        await h.wait_for_messages(GROUP, 1)
        await ask_group(h)
        answer = h.tg.chat_messages(GROUP)[-1]
        assert answer.history[0] == THINKING
        assert answer.text == SHOWN_ANSWER
        assert all(REASONING[:20] not in text for text in answer.history)


async def test_long_reasoning_is_shortened_above_the_answer(
    redis_url: str, key_prefix: str
) -> None:
    long = " ".join(f"Step {i}: consider the leaves again." for i in range(100))
    pieces = split_pieces(long)
    async with running_bot(
        redis_url, key_prefix, reply=thinker(reasoning=long, reasoning_seconds=0.2)
    ) as h:
        await ask_private(h)
        (final,) = h.tg.chat_messages(USER)
        quote = final.entities[0]
        assert quote["type"] == "expandable_blockquote"
        folded = final.text[: quote["length"]]
        assert 1000 < len(folded) <= 1202
        assert folded.endswith(" …")
        assert long.startswith(folded.removesuffix(" …"))
        assert final.text.endswith(SHOWN_ANSWER)
        assert len(pieces) > 100


async def test_length_before_any_answer_text_tells_the_user(
    redis_url: str, key_prefix: str
) -> None:
    cut = thinker(reasoning_seconds=0.2, text="", tokens=[], finish_reason="length")
    async with running_bot(redis_url, key_prefix, reply=cut) as h:
        await ask_private(h)
        (final,) = h.tg.chat_messages(USER)
        note = "⚠️ The model used its whole answer limit before writing an answer. Please ask again."
        assert final.text == f"{REASONING}\n\n{note}"
        assert final.entities[0]["type"] == "expandable_blockquote"

        h.glm.script(Reply(text="ok"))
        await ask_private(h, "what is tea, briefly?")
        assert next_request_messages(h) == [{"role": "user", "content": "what is tea, briefly?"}], (
            "a question with no answer is not kept as if it had one"
        )


async def test_reasoning_tokens_show_in_usage_and_cost_as_output(
    redis_url: str, key_prefix: str
) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    async with running_bot(
        redis_url, key_prefix, reply=thinker(reasoning_seconds=0.1, usage=usage)
    ) as h:
        h.tg.private_text(USER, "/model glm-5")
        await h.wait_for_messages(USER, 1)
        await ask_private(h)
        h.tg.private_text(USER, "/usage")
        await h.wait_for_messages(USER, 3)
        # glm-5: (1,000 x 4 + 500 x 18) / 1M CNY, the reasoning within the 500
        assert (
            "Today: 1,500 tokens (1,000 prompt + 500 answer, 300 of it reasoning) "
            "in 1 request, ≈ 0.0130 CNY"
        ) in h.last_text(USER)
