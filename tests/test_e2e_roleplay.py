"""Role-play personas end to end: `/persona use <preset>` with a preset naming CharGLM,
then the next GLM request carries the role-play model and the `meta` it requires (the
fake GLM refuses a role-play request without it, as Zhipu does)."""

from __future__ import annotations

import json
from typing import Any

from tests.harness import BotHarness, running_bot

ALICE = 424242
BOB, ADMIN = 515151, 9
GROUP = -100777
BOT = "@glm_test_bot"
DEFAULT = "glm-4.7-flash"
SHERLOCK_TEXT = "Stay in character. Answer as Sherlock Holmes would, in the user's language."


async def say(h: BotHarness, chat: int, text: str, *, user: int) -> str:
    before = len(h.tg.chat_messages(chat))
    if chat == GROUP:
        h.tg.group_text(GROUP, user, text, first_name="Ada")
    else:
        h.tg.private_text(user, text, first_name="Ann", last_name="Lee")
    await h.wait_for_messages(chat, before + 1)
    return h.last_text(chat)


async def ask(h: BotHarness, chat: int, question: str, *, user: int) -> dict[str, Any]:
    """Ask and wait for the answer; the GLM request's body."""
    before = len(h.glm.requests)
    if chat == GROUP:
        entities = [{"type": "mention", "offset": 0, "length": len(BOT)}]
        h.tg.group_text(GROUP, user, f"{BOT} {question}", entities=entities, first_name="Bob")
    else:
        h.tg.private_text(user, question, first_name="Ann", last_name="Lee")
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()
    return h.glm.requests[-1]


async def test_a_role_play_preset_answers_with_charglm_and_its_meta(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        assert (await say(h, ALICE, "/persona use sherlock", user=ALICE)).startswith(
            "Persona saved."
        )
        body = await ask(h, ALICE, "Who stole the tarts?", user=ALICE)
        assert (body["model"], body["max_tokens"]) == ("charglm-4", 2048)
        meta = body["meta"]
        assert meta["bot_name"] == "Sherlock Holmes"
        assert meta["bot_info"].startswith("The consulting detective of 221B Baker Street")
        assert meta["user_name"] == "Ann Lee"
        assert "Ann Lee" in meta["user_info"]
        assert str(ALICE) not in json.dumps(body), "the user's id never reaches Zhipu"
        assert body["messages"][0] == {"role": "system", "content": SHERLOCK_TEXT}
        assert h.glm.violations == []
        assert h.last_text(ALICE) == "Hello from GLM!"

        await say(h, ALICE, "/persona reset", user=ALICE)
        body = await ask(h, ALICE, "and now?", user=ALICE)
        assert body["model"] == DEFAULT
        assert "meta" not in body


async def test_in_a_group_meta_names_the_asker(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.set_member(GROUP, ADMIN, "administrator", first_name="Ada")
        await say(h, GROUP, "/persona use sherlock", user=ADMIN)
        body = await ask(h, GROUP, "what do you deduce about me?", user=BOB)
        assert body["model"] == "charglm-4"
        assert body["meta"]["user_name"] == "Bob"
        assert str(BOB) not in json.dumps(body["meta"])
        assert h.glm.violations == []


async def test_a_preset_may_name_a_chat_model(redis_url: str, key_prefix: str) -> None:
    """It answers with that model while in force, without meta."""
    personas = {"poet": {"text": "You write short poems.", "model": "glm-5"}}
    async with running_bot(redis_url, key_prefix, personas=personas) as h:
        await say(h, ALICE, "/persona use poet", user=ALICE)
        body = await ask(h, ALICE, "the sea", user=ALICE)
        assert (body["model"], body["max_tokens"]) == ("glm-5", 32768)
        assert "meta" not in body
