"""/search end to end: GLM's web_search tool asked for, its sources shown as numbered
links, `[ref_N]` markers linked numbers (never raw, also while the answer streams)."""

from __future__ import annotations

from typing import Any

from tests.fakes.glm import Reply, search_results
from tests.fakes.telegram_state import SentMessage
from tests.harness import BotHarness, running_bot

USER = 3003
GROUP = -100888
ALICE = 7
BOT = "@glm_test_bot"
ANSWER = "Tea comes from China [ref_1] and is drunk everywhere [ref_2]."
SHOWN = "Tea comes from China [1] and is drunk everywhere [2]."
SOURCES = "Sources\n1. Source 1\n2. Source 2"
WEB_SEARCH_TOOL = {
    "type": "web_search",
    "web_search": {"enable": True, "search_engine": "search_std", "search_result": True},
}


def searching(*, at: str = "first", interval: float = 0.0) -> Reply:
    return Reply(
        text=ANSWER, web_search=search_results(2), web_search_at=at, token_interval=interval
    )


def links(message: SentMessage) -> list[tuple[str, str]]:
    """The (shown text, url) of each link in a message."""
    units = message.text.encode("utf-16-le")
    found = []
    for entity in message.entities:
        if entity["type"] == "text_link":
            start, end = entity["offset"] * 2, (entity["offset"] + entity["length"]) * 2
            found.append((units[start:end].decode("utf-16-le"), entity["url"]))
    return found


def assert_cited(message: SentMessage) -> None:
    assert message.text == f"{SHOWN}\n\n{SOURCES}"
    assert "ref_" not in message.text
    assert links(message) == [
        ("[1]", "https://example.com/1"),
        ("[2]", "https://example.com/2"),
        ("Source 1", "https://example.com/1"),
        ("Source 2", "https://example.com/2"),
    ]


async def search(h: BotHarness, chat: int, question: str, *, user: int = USER) -> dict[str, Any]:
    """Send /search (in the group when `chat` is the group); the GLM request's body."""
    before = len(h.glm.requests)
    if chat == GROUP:
        h.tg.group_text(GROUP, user, f"/search{question}", first_name="Alice")
    else:
        h.tg.private_text(user, f"/search{question}")
    await h.glm.wait_for(lambda: len(h.glm.requests) > before, what="GLM request")
    await h.wait_idle()
    return h.glm.requests[-1]


async def test_private_search_lists_linked_sources(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=searching(interval=0.03)) as h:
        body = await search(h, USER, " where does tea come from?")
        assert body["tools"] == [WEB_SEARCH_TOOL]
        assert body["messages"][-1] == {"role": "user", "content": "where does tea come from?"}
        (answer,) = h.tg.chat_messages(USER)
        assert_cited(answer)
        drafts = [d for (chat, _), d in h.tg.drafts.items() if chat == USER]
        shown = [text for draft in drafts for text in draft.texts]
        assert len(shown) > 1, "the answer streamed"
        assert not [text for text in shown if "ref_" in text or "[re" in text], (
            "no raw marker, not even half of one, while streaming"
        )
        assert any("[1]" in text for text in shown)

        # the history keeps the plain numbers, not the links or the sources
        h.glm.script(Reply(text="ok"))
        h.tg.private_text(USER, "thanks")
        await h.tg.wait_for(lambda: h.last_text(USER) == "ok", what="next answer")
        assert h.glm_messages()[1] == {"role": "assistant", "content": SHOWN}
        assert "tools" not in h.glm.requests[-1], "one question searched, not the next"


async def test_sources_that_arrive_after_the_text_still_link_it(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(
        redis_url,
        key_prefix,
        reply=searching(at="last"),
        telegram={"private_stream_method": "edit"},
    ) as h:
        await search(h, USER, " tea?")
        (answer,) = h.tg.chat_messages(USER)
        assert_cited(answer)
        assert not [text for text in answer.history if "ref_" in text]


async def test_group_search_is_addressed_like_ask(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=searching(interval=0.02)) as h:
        h.tg.group_text(GROUP, ALICE, "/search@other_bot tea?", first_name="Alice")
        body = await search(h, GROUP, "@glm_test_bot where does tea come from?", user=ALICE)
        assert len(h.glm.requests) == 1, "a /search for another bot is not ours"
        assert body["tools"] == [WEB_SEARCH_TOOL]
        assert body["messages"][-1]["content"] == "Alice: where does tea come from?"
        (answer,) = h.tg.chat_messages(GROUP)
        assert answer.reply_to_message_id is not None, "a reply to the question"
        assert_cited(answer)
        assert not [text for text in answer.history if "ref_" in text or "[re" in text]


async def test_search_with_a_model_that_cannot_borrows_one_that_can(
    redis_url: str, key_prefix: str
) -> None:
    # the shipped glm-4.6v-flash has no web_search tool
    async with running_bot(redis_url, key_prefix, reply=searching()) as h:
        h.tg.private_text(USER, "/model glm-4.6v-flash")
        await h.wait_for_messages(USER, 1)
        body = await search(h, USER, " tea?")
        assert body["model"] == "glm-4.7-flash", "the default can search: it answers this one"
        assert body["tools"] == [WEB_SEARCH_TOOL]
        assert_cited(h.tg.chat_messages(USER)[-1])


async def test_an_empty_search_gets_a_hint(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.private_text(USER, "/search")
        h.tg.group_text(GROUP, ALICE, "/search@glm_test_bot   ", first_name="Alice")
        await h.wait_for_messages(USER, 1)
        await h.wait_for_messages(GROUP, 1)
        hint = "Write your question after /search, e.g. /search what happened in tech today?"
        assert h.last_text(USER) == hint
        assert h.last_text(GROUP) == hint
        h.tg.private_text(USER, "/search", language_code="zh-hans")
        await h.wait_for_messages(USER, 2)
        assert h.last_text(USER).startswith("请在 /search 之后写下问题")
        assert not h.glm.requests
