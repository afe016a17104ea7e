"""Group chats and personas, end to end against the fakes and real Redis."""

from __future__ import annotations

from typing import Any

from bot.storage.keys import ConversationKey
from tests.fakes.glm import Reply
from tests.harness import BotHarness, eventually, running_bot

GROUP = -100555
ALICE, BOB, ADMIN = 7, 8, 9
BOT = "@glm_test_bot"


def mention(text: str, at: int = 0, name: str = BOT) -> list[dict[str, Any]]:
    return [{"type": "mention", "offset": at, "length": len(name)}]


async def ask(
    h: BotHarness, text: str, *, user: int = ALICE, name: str = "Alice", **kw: Any
) -> int:
    """Mention the bot; returns the user's message id."""
    before = len(h.glm.requests)
    h.tg.group_text(GROUP, user, f"{BOT} {text}", first_name=name, entities=mention(text), **kw)
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()
    return h.tg.chat_messages(GROUP, kw.get("message_thread_id"))[-1].reply_to_message_id or 0


async def test_only_addressed_messages_are_answered(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="Four.")) as h:
        h.tg.group_text(GROUP, ALICE, "hello everyone, no bot here")
        h.tg.group_text(
            GROUP, BOB, "@other_bot what is this?", entities=mention("", 0, "@other_bot")
        )
        h.tg.group_text(GROUP, ALICE, "/ask@other_bot what?")
        asked = await ask(h, "what is 2+2?")

        assert len(h.glm.requests) == 1
        assert h.glm_messages() == [{"role": "user", "content": "Alice: what is 2+2?"}]
        (answer,) = h.tg.chat_messages(GROUP)
        assert answer.text == "Four."
        assert answer.reply_to_message_id == asked, "the answer replies to the question"


async def test_reply_and_ask_are_answered_with_speakers(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(Reply(text="Hi Alice."), Reply(text="Hi Bob."), Reply(text="Sure."))
        await ask(h, "hi", user=ALICE, name="Alice")
        bot_message = h.tg.chat_messages(GROUP)[-1].message_id

        h.tg.group_text(GROUP, BOB, "and me?", first_name="Bob", reply_to_message_id=bot_message)
        await h.tg.wait_for(lambda: h.last_text(GROUP) == "Hi Bob.", what="reply answered")
        await h.wait_idle()

        h.tg.group_text(GROUP, ALICE, "/ask@glm_test_bot summarise", first_name="Alice")
        await h.tg.wait_for(lambda: h.last_text(GROUP) == "Sure.", what="/ask answered")
        assert [m["content"] for m in h.glm_messages()] == [
            "Alice: hi",
            "Hi Alice.",
            "Bob: and me?",
            "Hi Bob.",
            "Alice: summarise",
        ]


async def test_empty_mention_gets_a_hint(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.group_text(GROUP, ALICE, BOT, entities=mention(""))
        await h.wait_for_messages(GROUP, 1)
        assert "@glm_test_bot" in h.last_text(GROUP)
        assert not h.glm.requests


async def test_forum_topics_keep_separate_histories(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="ok")) as h:
        await ask(h, "topic seven", message_thread_id=7, is_forum=True)
        await ask(h, "topic nine", message_thread_id=9, is_forum=True)
        await ask(h, "seven again", message_thread_id=7, is_forum=True)
        assert [m["content"] for m in h.glm_messages(1)] == ["Alice: topic nine"]
        assert [m["content"] for m in h.glm_messages(2)] == [
            "Alice: topic seven",
            "ok",
            "Alice: seven again",
        ]
        assert [m.text for m in h.tg.chat_messages(GROUP, 9)] == ["ok"]
        assert all(m.message_thread_id == 7 for m in h.tg.chat_messages(GROUP, 7))


async def test_admin_sets_persona_others_are_refused(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="Arr.")) as h:
        h.tg.set_member(GROUP, ADMIN, "administrator", first_name="Ada")
        h.tg.group_text(GROUP, ADMIN, "/persona You are a pirate.", first_name="Ada")
        await h.wait_for_messages(GROUP, 1)
        assert "saved" in h.last_text(GROUP)

        h.tg.group_text(GROUP, BOB, "/persona You are a cat.", first_name="Bob")
        await h.wait_for_messages(GROUP, 2)
        assert "admins" in h.last_text(GROUP)

        await ask(h, "who are you?")
        assert h.glm_messages()[0] == {"role": "system", "content": "You are a pirate."}

        h.tg.group_text(GROUP, ALICE, "/persona")
        await h.wait_for_messages(GROUP, 4)
        shown = h.last_text(GROUP)
        assert "Ada (id 9)" in shown
        assert "You are a pirate." in shown

        # /reset (by an admin) forgets the history, not the persona
        h.tg.group_text(GROUP, ADMIN, "/reset", first_name="Ada")
        await h.wait_for_messages(GROUP, 5)
        await ask(h, "again?")
        assert h.glm_messages() == [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Alice: again?"},
        ]


async def test_anonymous_admin_and_limits(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, persona={"max_length": 50}) as h:
        anonymous = {"id": GROUP, "type": "supergroup", "title": "Test group"}
        h.tg.group_text(
            GROUP,
            1087968824,
            "/persona <b>Be brief.</b>",
            first_name="Group",
            from_is_bot=True,
            sender_chat=anonymous,
        )
        await h.wait_for_messages(GROUP, 1)
        assert "saved" in h.last_text(GROUP)

        h.tg.group_text(
            GROUP,
            1087968824,
            "/persona " + "x" * 51,
            first_name="Group",
            from_is_bot=True,
            sender_chat=anonymous,
        )
        await h.wait_for_messages(GROUP, 2)
        assert "too long" in h.last_text(GROUP)

        h.tg.group_text(GROUP, ALICE, "/persona")
        await h.wait_for_messages(GROUP, 3)
        shown = h.tg.chat_messages(GROUP)[-1]
        assert "<b>Be brief.</b>" in shown.text, "persona shown literally, not as HTML"
        assert not shown.entities


async def test_listen_mode_records_context(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="Noted.")) as h:
        h.tg.set_member(GROUP, ADMIN, "creator", first_name="Ada")
        h.tg.group_text(GROUP, ADMIN, "/listen on", first_name="Ada")
        await h.wait_for_messages(GROUP, 1)
        h.tg.group_text(GROUP, BOB, "the meeting is at 5", first_name="Bob")
        await eventually(
            lambda: h.app.store.length(ConversationKey(GROUP)),
            1,
            what="Bob's message recorded",
        )
        await ask(h, "when is the meeting?")
        assert [m["content"] for m in h.glm_messages()] == [
            "Bob: the meeting is at 5",
            "Alice: when is the meeting?",
        ]


async def test_bots_channels_edits_and_service_messages_are_ignored(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="fine")) as h:
        h.tg.group_text(GROUP, 555, f"{BOT} from a bot", entities=mention(""), from_is_bot=True)
        channel = {"id": -1009999, "type": "channel", "title": "News"}
        h.tg.group_text(
            GROUP,
            136817688,
            f"{BOT} from a channel",
            entities=mention(""),
            from_is_bot=True,
            sender_chat=channel,
        )
        h.tg.push_message(
            {
                "chat": {"id": GROUP, "type": "supergroup", "title": "Test group"},
                "from": {"id": ALICE, "is_bot": False, "first_name": "Alice"},
                "text": f"{BOT} edited",
                "entities": mention(""),
                "edit_date": 1,
            },
            edited=True,
        )
        h.tg.push_message(
            {
                "chat": {"id": GROUP, "type": "supergroup", "title": "Test group"},
                "from": {"id": ALICE, "is_bot": False, "first_name": "Alice"},
                "new_chat_members": [{"id": BOB, "is_bot": False, "first_name": "Bob"}],
            }
        )
        await ask(h, "a real question")
        assert len(h.glm.requests) == 1
        assert h.glm_messages() == [{"role": "user", "content": "Alice: a real question"}]
        assert h.texts(GROUP) == ["fine"]
