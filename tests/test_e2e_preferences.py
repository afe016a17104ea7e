"""/think, /effort, /reasoning and /websearch end to end: each change shows in the next
GLM request's body (the fake GLM records it); what the chat's model cannot take is
explained and changes nothing; in groups only admins change them."""

from __future__ import annotations

from typing import Any

from bot.preferences import ChatPreferences
from tests.fakes.glm import Reply
from tests.harness import BotHarness, running_bot

USER = 4004
GROUP = -100999
BOB, ADMIN = 8, 9
BOT = "@glm_test_bot"
# a model that takes reasoning_effort (glm-5.2 on), and one that always thinks
EXTRA_MODELS: dict[str, Any] = {
    "glm-5.2": {
        "context_window": 1_000_000,
        "max_tokens": 32768,
        "thinking": "optional",
        "reasoning_effort": True,
        "web_search": True,
    },
    "glm-5.3": {"context_window": 200_000, "max_tokens": 32768, "thinking": "always"},
}


async def say(h: BotHarness, chat: int, text: str, *, user: int = USER, **kw: Any) -> str:
    """Send a command and wait for the bot's reply; its text."""
    before = len(h.tg.chat_messages(chat))
    if chat == GROUP:
        h.tg.group_text(GROUP, user, text, first_name=f"User{user}", **kw)
    else:
        h.tg.private_text(user, text, **kw)
    await h.wait_for_messages(chat, before + 1)
    return h.last_text(chat)


async def ask(h: BotHarness, chat: int = USER, *, user: int = USER) -> dict[str, Any]:
    """Ask something; the body of the GLM request it made."""
    before = len(h.glm.requests)
    if chat == GROUP:
        entities = [{"type": "mention", "offset": 0, "length": len(BOT)}]
        h.tg.group_text(GROUP, user, f"{BOT} hi", entities=entities)
    else:
        h.tg.private_text(user, "hi")
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()
    return h.glm.requests[-1]


async def test_think_turns_thinking_on_off_and_back_to_the_default(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="ok")) as h:
        assert await say(h, USER, "/think") == (
            "Thinking here: auto (the model's default). "
            "Change it with /think on, /think off or /think auto."
        )
        # the SDK sends "thinking": null, which leaves it to the model
        assert (await ask(h))["thinking"] is None, "the model's own default"

        assert (await say(h, USER, "/think off")).startswith("Saved. Thinking here: off")
        assert (await ask(h))["thinking"] == {"type": "disabled"}
        assert (await say(h, USER, "/think")).startswith("Thinking here: off")

        await say(h, USER, "/think on")
        assert (await ask(h))["thinking"] == {"type": "enabled"}

        reply = await say(h, USER, "/think maybe")
        assert reply.startswith("“maybe” is not one of the choices. Nothing changed.\n")
        assert (await ask(h))["thinking"] == {"type": "enabled"}

        await say(h, USER, "/think auto")
        assert (await ask(h))["thinking"] is None

        zh = await say(h, USER, "/think", language_code="zh-hans")
        assert zh.startswith("这里的思考模式：自动（模型默认）")


async def test_think_explains_models_that_cannot_change_it(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="ok"), models=EXTRA_MODELS) as h:
        await say(h, USER, "/model glm-4-flash-250414")
        assert await say(h, USER, "/think on") == (
            "glm-4-flash-250414 answers without thinking. /model offers models that think."
        )
        await say(h, USER, "/model glm-5.3")
        reply = await say(h, USER, "/think off")
        assert reply.startswith("glm-5.3 always thinks before it answers")
        body = await ask(h)
        assert (body["model"], body["thinking"]) == ("glm-5.3", None), "nothing changed"


async def test_effort_where_the_model_takes_it(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="ok"), models=EXTRA_MODELS) as h:
        assert await say(h, USER, "/effort high") == (
            "glm-4.7-flash does not take a reasoning effort. /model offers other models."
        )
        assert "reasoning_effort" not in await ask(h)

        await say(h, USER, "/model glm-5.2")
        assert await say(h, USER, "/effort") == (
            "Reasoning effort here: auto (the model's default). "
            "Change it with /effort none|minimal|low|medium|high|xhigh|max or auto."
        )
        assert (await say(h, USER, "/effort HIGH")).startswith("Saved. Reasoning effort here: high")
        body = await ask(h)
        assert (body["model"], body["reasoning_effort"]) == ("glm-5.2", "high")
        assert (await say(h, USER, "/effort extreme")).startswith("“extreme” is not one")
        assert (await ask(h))["reasoning_effort"] == "high"
        await say(h, USER, "/effort auto")
        assert "reasoning_effort" not in await ask(h)


async def test_reasoning_display_choice(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        assert await say(h, USER, "/reasoning") == (
            "The model's reasoning here: folded into a quote above each answer. "
            "Change it with /reasoning show or /reasoning hide."
        )
        reply = await say(h, USER, "/reasoning hide")
        assert reply.startswith("Saved. The model's reasoning here: left out of the answers.")
        assert (await say(h, USER, "/reasoning")).startswith("The model's reasoning here: left out")
        assert (await ChatPreferences(h.app.store).get(USER)).show_reasoning == "hidden"
        await say(h, USER, "/reasoning show")
        assert (await ChatPreferences(h.app.store).get(USER)).show_reasoning == "folded"


async def test_websearch_searches_every_question(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="ok")) as h:
        assert (await say(h, USER, "/websearch")).startswith(
            "Web search on every question here: off."
        )
        assert "tools" not in await ask(h)
        await say(h, USER, "/websearch on")
        for _ in range(2):
            assert (await ask(h))["tools"][0]["type"] == "web_search"
        await say(h, USER, "/websearch off")
        assert "tools" not in await ask(h)

        await say(h, USER, "/model glm-4.6v-flash")
        reply = await say(h, USER, "/websearch on")
        assert reply.startswith("glm-4.6v-flash cannot search the web.")
        assert "tools" not in await ask(h)


async def test_in_a_group_only_admins_change_them(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="ok")) as h:
        h.tg.set_member(GROUP, ADMIN, "administrator", first_name="Ada")
        for command in ("/think off", "/reasoning hide", "/websearch on"):
            reply = await say(h, GROUP, command, user=BOB)
            assert reply == "Only this group's admins can change how I answer here."
        assert (await say(h, GROUP, "/think", user=BOB)).startswith("Thinking here: auto")
        body = await ask(h, GROUP, user=BOB)
        assert (body["thinking"], "tools" in body) == (None, False), "nothing changed"

        await say(h, GROUP, "/think@glm_test_bot off", user=ADMIN)
        await say(h, GROUP, "/websearch on", user=ADMIN)
        body = await ask(h, GROUP, user=BOB)
        assert body["thinking"] == {"type": "disabled"}
        assert body["tools"][0]["type"] == "web_search"
        assert (await ask(h, USER))["thinking"] is None, "per chat: the private chat is untouched"
