"""Issue 14.1 and 14.2 end to end: a stream that ends without its end marker is an
interrupted answer (marked, never stored), and a stall before the first chunk is bounded
by LLM__STALL_TIMEOUT and the retry budget, not by the read timeout."""

from __future__ import annotations

import time

from bot.storage.keys import ConversationKey
from tests.fakes.glm import Reply
from tests.harness import running_bot

USER = 4101


async def test_a_body_that_ends_without_its_end_marker_is_interrupted_and_not_stored(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        # text, a pause shorter than the stall limit, then a clean end: no finish, no [DONE]
        h.glm.script(Reply(text="The first half of an answer", end_early_after=3, end_pause=0.3))
        h.tg.private_text(USER, "tell me everything")
        await h.tg.wait_for(lambda: "interrupted" in h.last_text(USER), what="the interrupted note")
        await h.wait_idle()
        shown = h.last_text(USER)
        assert shown.startswith("The first"), shown
        assert await h.app.store.length(ConversationKey(USER)) == 0, "the fragment was not kept"

        h.glm.script(Reply(text="Whole."))
        h.tg.private_text(USER, "again")
        await h.tg.wait_for(lambda: h.last_text(USER) == "Whole.", what="the next answer")
        # the next request carries no fragment presented as a whole answer
        assert [m["content"] for m in h.glm_messages()] == ["again"]


async def test_a_stall_before_the_first_chunk_is_bounded_by_the_stall_limit(
    redis_url: str, key_prefix: str
) -> None:
    stall, budget = 1.0, 2.0
    llm = {
        "stall_timeout": stall,
        "read_timeout": 60.0,
        "retry_attempts": 3,
        "retry_max_seconds": budget,
    }
    async with running_bot(redis_url, key_prefix, llm=llm) as h:
        # headers, then nothing, on every attempt
        h.glm.script(*[Reply(stall_after=0)] * 3)
        started = time.monotonic()
        h.tg.private_text(USER, "hello?")
        await h.tg.wait_for(
            lambda: "took too long" in h.last_text(USER) or "did not answer" in h.last_text(USER),
            timeout=30,
            what="the timeout note",
        )
        waited = time.monotonic() - started
        await h.wait_idle()
        # one attempt's stall limit, then retries cut to what is left of the budget: far
        # below the 60 s read timeout the attempts used to wait each
        assert waited < stall + budget + 3, waited
        assert await h.app.store.length(ConversationKey(USER)) == 0
