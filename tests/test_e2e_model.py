"""/model and the model catalog end to end: the real dispatcher polling the fake Bot API,
the real SDK streaming from the fake GLM (which records each request's body), real Redis.
"""

from __future__ import annotations

from typing import Any

from bot.prompt.tokens import message_tokens
from tests.fakes.glm import Reply
from tests.fakes.telegram_state import SentMessage
from tests.harness import BotHarness, running_bot

ALICE, BOB, ADMIN = 7, 8, 9
GROUP = -100777
BOT = "@glm_test_bot"
DEFAULT = "glm-4.7-flash"
# the shipped catalog's chat models, in its order (legacy glm-4 and role-play left out)
OFFERED = ["glm-4.7-flash", "glm-4-flash-250414", "glm-5", "glm-4.6v-flash"]
USAGE = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}


def buttons(message: SentMessage) -> list[tuple[str, str]]:
    markup = message.reply_markup or {}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


async def say(h: BotHarness, chat: int, text: str, *, user: int = ALICE) -> SentMessage:
    """Send a text (in the group when `chat` is the group) and wait for the bot's reply."""
    before = len(h.tg.chat_messages(chat))
    if chat == GROUP:
        h.tg.group_text(GROUP, user, text, first_name=f"User{user}")
    else:
        h.tg.private_text(user, text)
    await h.wait_for_messages(chat, before + 1)
    return h.tg.chat_messages(chat)[-1]


async def ask(h: BotHarness, chat: int, question: str, *, user: int = ALICE) -> dict[str, Any]:
    """Ask (a mention in the group) and wait for the answer; the GLM request's body."""
    before = len(h.glm.requests)
    if chat == GROUP:
        entities = [{"type": "mention", "offset": 0, "length": len(BOT)}]
        h.tg.group_text(GROUP, user, f"{BOT} {question}", entities=entities)
    else:
        h.tg.private_text(user, question)
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()
    return h.glm.requests[-1]


async def press(h: BotHarness, chat: int, message_id: int, user: int, data: str) -> dict[str, Any]:
    """Press a button; what the bot answered to the callback query."""
    h.tg.press_button(chat, message_id, user, data)
    answers = h.tg.callback_answers
    count = len(answers)
    await h.tg.wait_for(lambda: len(answers) > count, what="callback answered")
    return list(answers.values())[-1]


async def test_private_chat_lists_and_switches_by_name_and_by_button(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        listing = await say(h, ALICE, "/model")
        assert listing.text == f"Model here: {DEFAULT}. Choose another:"
        assert [data for _, data in buttons(listing)] == [f"model:{name}" for name in OFFERED]
        labels = [label for label, _ in buttons(listing)]
        assert labels[0] == f"✓ {DEFAULT} · free", "the current model is ticked"
        assert labels[2] == "glm-5", "a paid model is not called free"

        assert (await ask(h, ALICE, "hello"))["model"] == DEFAULT

        assert (await say(h, ALICE, "/model glm-5")).text == "Done: glm-5 answers here from now on."
        body = await ask(h, ALICE, "and now?")
        assert (body["model"], body["max_tokens"]) == ("glm-5", 32768), "the model's own limit"

        answer = await press(h, ALICE, listing.message_id, ALICE, "model:glm-4-flash-250414")
        assert answer.get("text") == "Done: glm-4-flash-250414 answers here from now on."
        edited = h.tg.message(ALICE, listing.message_id)
        assert edited is not None
        await h.tg.wait_for(
            lambda: edited.text == "Model here: glm-4-flash-250414. Choose another:",
            what="the list shows the new model",
        )
        assert buttons(edited)[1][0] == "✓ glm-4-flash-250414 · free"
        assert (await ask(h, ALICE, "and now?"))["model"] == "glm-4-flash-250414"

        assert "hello" in str(h.glm_messages()), "the history goes with the chat, not the model"


async def test_unknown_or_unoffered_names_change_nothing(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        for name in ("gpt-4", "glm-4", "cogview-3-flash", "charglm-4"):
            reply = await say(h, ALICE, f"/model {name}")
            assert reply.text == (
                f'There is no chat model "{name}". Choose one of: {", ".join(OFFERED)}. '
                "Nothing changed."
            )
        answer = await press(h, ALICE, reply.message_id, ALICE, "model:glm-4")
        assert answer.get("show_alert") is True
        assert (await ask(h, ALICE, "hi"))["model"] == DEFAULT


async def test_in_a_group_only_admins_switch(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.set_member(GROUP, ADMIN, "administrator", first_name="Ada")
        refused = await say(h, GROUP, "/model glm-5", user=BOB)
        assert refused.text == "Only this group's admins can change the model."
        listing = await say(h, GROUP, "/model", user=BOB)
        assert listing.text == f"Model here: {DEFAULT}. Choose another:", "anyone may look"
        answer = await press(h, GROUP, listing.message_id, BOB, "model:glm-5")
        assert answer.get("show_alert") is True
        assert answer.get("text") == "Only this group's admins can change the model."
        assert (await ask(h, GROUP, "hi", user=BOB))["model"] == DEFAULT

        done = await say(h, GROUP, "/model glm-5", user=ADMIN)
        assert done.text == "Done: glm-5 answers here from now on."
        assert (await ask(h, GROUP, "hi again", user=BOB))["model"] == "glm-5"
        assert (await ask(h, ALICE, "private"))["model"] == DEFAULT, "per chat, not per user"


async def test_usage_and_cost_are_charged_to_the_answering_model(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(
        redis_url, key_prefix, reply=Reply(text="Hello from GLM!", usage=USAGE)
    ) as h:
        await ask(h, ALICE, "one")
        await say(h, ALICE, "/model glm-5")
        await ask(h, ALICE, "two")
        await ask(h, ALICE, "three")
        assert [body["model"] for body in h.glm.requests] == [DEFAULT, "glm-5", "glm-5"]
        report = (await say(h, ALICE, "/usage")).text
        # glm-5: 2 x (1,000 x 4 + 500 x 18) / 1M CNY; glm-4.7-flash is free
        assert "in 3 requests, ≈ 0.0260 CNY" in report
        assert (
            "By model this month:\n"
            "glm-5: 3,000 tokens, ≈ 0.0260 CNY\n"
            "glm-4.7-flash: 1,500 tokens, ≈ 0.0000 CNY"
        ) in report


async def test_a_small_context_cap_still_answers_every_question(
    redis_url: str, key_prefix: str
) -> None:
    """LLM__CONTEXT_TOKENS=600 with the default answer limits: every question is answered
    and no request carries more than 600 estimated prompt tokens."""
    questions = [
        "short one",
        "Tell me about the history of tea. " * 100,  # longer than the cap alone
        "and another short one",
        "one more",
        "你好，" * 500,
        "a short one again",
        "last",
    ]
    # GLM's prompt counts are left out (0 is ignored by the calibration), so that the cap
    # bounds the estimate itself; calibration against GLM's counts is test_tokens' part.
    reply = Reply(
        text="Hello from GLM!",
        usage={"prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 4},
    )
    async with running_bot(redis_url, key_prefix, reply=reply, llm={"context_tokens": 600}) as h:
        for question in questions:
            before = len(h.tg.chat_messages(ALICE))
            await ask(h, ALICE, question)
            assert len(h.tg.chat_messages(ALICE)) == before + 1, "answered"
            assert h.last_text(ALICE).startswith("Hello from GLM!")
        assert len(h.glm.requests) == len(questions)
        sizes = [
            sum(message_tokens(m["content"]) for m in body["messages"]) for body in h.glm.requests
        ]
        assert max(sizes) <= 600, sizes
        assert sizes[1] > 500, "a long question fills the cap"
        # the history still travels, trimmed to the cap
        assert len(h.glm.requests[3]["messages"]) == 3
        assert len(h.glm.requests[-1]["messages"]) == 3
        notes = [text for text in h.texts(ALICE) if "shortened" in text]
        assert len(notes) == 2, "each long question was cut, and the user told"
