"""Streaming answers to a fake Telegram: drafts, edits, splits, flood limits, deletions."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.streaming import DraftWriter, EditWriter, StreamDelivery
from bot.streaming.formatting import render, utf16_len
from bot.streaming.outlet import DRAFTS_RECHECK_SECONDS
from bot.streaming.parts import PartTracker
from bot.streaming.ratelimit import TelegramRateLimiter
from tests.fakes.telegram import FakeTelegram, Limits, SentMessage

PRIVATE = 1001
GROUP = -100500


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    client = Bot(fake.token, session=session)
    yield client
    await client.session.close()


def _delivery(bot: Bot, **kwargs: Any) -> StreamDelivery:
    limiter = TelegramRateLimiter(per_chat_interval=0.05)
    kwargs.setdefault("edit_interval", 0.2)
    kwargs.setdefault("draft_interval", 0.1)
    return StreamDelivery(bot, limiter, **kwargs)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _words(count: int) -> list[str]:
    return [f"word{i} " for i in range(count)]


async def _stream(writer: Any, chunks: list[str], pause: float = 0.01) -> str:
    """Feed the chunks as a model would, pausing to pace tokens (not to synchronise)."""
    text = ""
    for chunk in chunks:
        text += chunk
        writer.update(text)
        await asyncio.sleep(pause)
    return text


def _texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in fake.chat_messages(chat_id)]


def _no_flood_mention(messages: list[SentMessage]) -> None:
    for message in messages:
        for text in [message.text, *message.history]:
            assert "retry" not in text.lower()
            assert "too many" not in text.lower()


# -- EditWriter ------------------------------------------------------------------------------


async def test_first_text_goes_out_at_once_then_edits_are_throttled(
    fake: FakeTelegram, bot: Bot
) -> None:
    interval = 0.5
    writer = _delivery(bot, private_method="edit", edit_interval=interval).writer(
        chat_id=PRIVATE, is_private=True
    )
    assert isinstance(writer, EditWriter)
    await writer.begin()
    started = time.monotonic()
    writer.update("Hello")
    await fake.wait_for(lambda: bool(fake.chat_messages(PRIVATE)), 5, "the first message")
    (send,) = fake.calls_of("sendMessage")
    assert send.at - started < interval * 0.8, "no fixed wait before the first text"
    assert writer.first_visible_at is not None
    text = await _stream(writer, _words(150), pause=0.01)
    await writer.finish(text)

    (message,) = fake.chat_messages(PRIVATE)
    assert message.text == text.strip()
    edits = fake.calls_of("editMessageText")
    streamed_for = edits[-1].at - send.at
    assert 2 <= len(edits) <= streamed_for / interval + 2
    gaps = [b.at - a.at for a, b in itertools.pairwise([send, *edits])]
    assert all(gap >= interval * 0.9 for gap in gaps[:-1]), gaps  # the final edit goes at once
    assert all(call.ok for call in fake.calls), "no refused call, 'not modified' included"
    assert all(a != b for a, b in itertools.pairwise(message.history))
    assert fake.calls_of("sendChatAction"), "typing was shown first"
    assert writer.api_calls == len(fake.calls)
    await writer.aclose()
    await writer.aclose()


async def test_cadence_stretches_for_long_answers_and_busy_groups(bot: Bot) -> None:
    limiter = TelegramRateLimiter(per_chat_interval=0)
    writer = StreamDelivery(bot, limiter, edit_interval=1.0).writer(chat_id=GROUP, is_private=False)
    assert isinstance(writer, EditWriter)
    writer._markdown = "x" * 1000
    assert writer._interval() == pytest.approx(1.0, abs=0.05)
    writer._markdown = "x" * 4000
    assert writer._interval() == pytest.approx(3.0, abs=0.1)  # +1 s per 1,000 beyond 2,000
    writer._markdown = "x" * 100_000
    assert writer._interval() == pytest.approx(5.0, abs=0.2)  # at most +4 s
    for _ in range(7):  # about half the group's minute budget for edits is used
        await limiter.acquire(GROUP)
    writer._markdown = "x" * 1000
    assert writer._interval() > 1.8


async def test_identical_text_is_not_edited_again(fake: FakeTelegram, bot: Bot) -> None:
    writer = _delivery(bot).writer(chat_id=GROUP, is_private=False)
    writer.update("Same **text**")
    await fake.wait_for(lambda: bool(fake.chat_messages(GROUP)), 5, "the first message")
    writer.update("Same **text**   ")  # renders the same
    writer.update("Same **text")  # unclosed emphasis mid-stream renders differently...
    writer.update("Same **text**")  # ...but this is what is shown already
    await writer.finish("Same **text**")
    assert fake.calls_of("editMessageText") == []
    (message,) = fake.chat_messages(GROUP)
    assert message.text == "Same text"
    assert message.entities == [{"type": "bold", "offset": 5, "length": 4}]


async def test_group_reply_in_topic_with_stop_button_removed_at_the_end(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.chat(GROUP).is_forum = True
    writer = _delivery(bot).writer(
        chat_id=GROUP, is_private=False, thread_id=77, reply_to_message_id=5, stop_button=True
    )
    writer.update("Thinking about it")
    await fake.wait_for(lambda: bool(fake.chat_messages(GROUP)), 5, "the first message")
    (message,) = fake.chat_messages(GROUP)
    assert message.reply_markup == {"inline_keyboard": [[{"text": "⏹", "callback_data": "stop"}]]}
    assert message.message_thread_id == 77
    send = fake.calls_of("sendMessage")[0]
    assert send.params["reply_parameters"]["message_id"] == 5
    await writer.finish("Thinking about it: done.")
    (message,) = fake.chat_messages(GROUP, 77)
    assert message.text == "Thinking about it: done."
    assert message.reply_markup is None


async def test_final_text_lands_through_429s_without_telling_the_user(
    fake: FakeTelegram, bot: Bot
) -> None:
    writer = _delivery(bot).writer(chat_id=GROUP, is_private=False)
    fake.fail_next("sendMessage", error_code=429, retry_after=1)
    writer.update("First words")
    await fake.wait_for(lambda: bool(fake.chat_messages(GROUP)), 5, "the first message")
    fake.fail_next("editMessageText", error_code=429, retry_after=1, times=2)
    text = await _stream(writer, _words(30), pause=0.01)
    fake.fail_next("editMessageText", error_code=429, retry_after=1)
    final = "First words " + text + "\n\nThe **end**."
    await writer.finish(final)
    assert fake.rejected_429() >= 3
    (message,) = fake.chat_messages(GROUP)
    assert message.text == render(final).text
    _no_flood_mention(fake.chat_messages(GROUP))
    # after a 429 the next call waited retry_after
    calls = fake.calls
    for i, call in enumerate(calls[:-1]):
        if call.error_code == 429:
            following = next(c for c in calls[i + 1 :] if c.method != "sendChatAction")
            assert following.at - call.at >= 0.95


async def test_message_deleted_mid_stream_continues_in_a_new_message(
    fake: FakeTelegram, bot: Bot
) -> None:
    writer = _delivery(bot).writer(chat_id=GROUP, is_private=False)
    writer.update("Part one")
    await fake.wait_for(lambda: bool(fake.chat_messages(GROUP)), 5, "the first message")
    first = fake.chat_messages(GROUP)[0]
    fake.delete_message(GROUP, first.message_id)
    text = await _stream(writer, ["Part one", *_words(40)], pause=0.01)
    await writer.finish(text + "end.")
    (message,) = fake.chat_messages(GROUP)
    assert message.message_id != first.message_id
    assert message.text == (text + "end.").strip()
    assert writer.message_ids == [message.message_id]


async def test_refused_entities_fall_back_to_plain_text(fake: FakeTelegram, bot: Bot) -> None:
    writer = _delivery(bot).writer(chat_id=GROUP, is_private=False)
    fake.fail_next(
        "sendMessage",
        description="Bad Request: can't parse entities: Can't find end of the entity",
    )
    await writer.finish("Some **bold** claim")
    (message,) = fake.chat_messages(GROUP)
    assert message.text == "Some bold claim"
    assert message.entities == []


async def test_unforeseen_refusal_of_the_final_text_resends_it_plain(
    fake: FakeTelegram, bot: Bot
) -> None:
    writer = _delivery(bot).writer(chat_id=GROUP, is_private=False)
    fake.fail_next("sendMessage", description="Bad Request: message is too long")
    await writer.finish("A **bold** answer")
    assert _texts(fake, GROUP) == ["A bold answer"]
    assert fake.chat_messages(GROUP)[0].entities == []


async def test_footer_is_an_italic_line_or_the_whole_message(fake: FakeTelegram, bot: Bot) -> None:
    delivery = _delivery(bot)
    writer = delivery.writer(chat_id=GROUP, is_private=False)
    writer.update("Partial answer")
    await writer.finish("Partial answer", footer="⏹ Stopped")
    (message,) = fake.chat_messages(GROUP)
    assert message.text == "Partial answer\n\n⏹ Stopped"
    assert message.entities == [{"type": "italic", "offset": 16, "length": 9}]

    alone = delivery.writer(chat_id=PRIVATE, is_private=False)
    await alone.finish("", footer="⚠️ The model is unavailable")
    (notice,) = fake.chat_messages(PRIVATE)
    assert notice.text == "⚠️ The model is unavailable"
    assert notice.entities == [{"type": "italic", "offset": 0, "length": 27}]


def _long_answer() -> str:
    intro = "Here is a **long** answer.\n\n" + "".join(
        f"Point {i}: {'some explanation ' * 8}\n\n" for i in range(24)
    )
    code = "```python\n" + "".join(f"result_{i} = transform(data, {i})\n" for i in range(170))
    return intro + code + "```\n\nAnd a final *remark*."


async def test_long_answer_is_split_into_messages_that_are_then_left_alone(
    fake: FakeTelegram, bot: Bot
) -> None:
    answer = _long_answer()
    assert len(answer) > 9_000
    writer = _delivery(bot, edit_interval=0.05).writer(chat_id=GROUP, is_private=False)
    chunks = [answer[i : i + 150] for i in range(0, len(answer), 150)]
    await _stream(writer, chunks, pause=0.01)
    await writer.finish(answer)

    messages = fake.chat_messages(GROUP)
    assert len(messages) >= 3
    for message in messages:
        assert 0 < utf16_len(message.text) <= 4000
        for entity in message.entities:
            if entity["type"] == "pre":
                assert entity.get("language") == "python"
    joined = "".join(m.text for m in messages)
    assert _squash(joined) == _squash(render(answer).text)
    code = [line for m in messages for line in m.text.splitlines() if "transform" in line]
    assert code == [f"result_{i} = transform(data, {i})" for i in range(170)]
    # a message is never edited once the next one exists
    calls = [c for c in fake.calls if c.ok and c.method in ("sendMessage", "editMessageText")]
    created_at = {m.message_id: i for i, m in enumerate(messages)}
    sends = [i for i, c in enumerate(calls) if c.method == "sendMessage"]
    for index, message in enumerate(messages[:-1]):
        next_sent = sends[index + 1]
        late = [
            c
            for c in calls[next_sent:]
            if c.method == "editMessageText" and c.params["message_id"] == message.message_id
        ]
        assert late == [], f"message {created_at[message.message_id]} edited after sealing"


async def test_no_429_when_the_limiter_matches_telegram(fake: FakeTelegram, bot: Bot) -> None:
    fake.limits = Limits(per_chat_interval=0.3, group_per_minute=40, global_per_second=30)
    limiter = TelegramRateLimiter(per_chat_interval=0.3, group_per_minute=40)
    delivery = StreamDelivery(bot, limiter, edit_interval=0.1)
    writers = [delivery.writer(chat_id=GROUP - i, is_private=False) for i in range(3)]
    texts = await asyncio.gather(*(_stream(w, _words(60), pause=0.01) for w in writers))
    await asyncio.gather(*(w.finish(t) for w, t in zip(writers, texts, strict=True)))
    assert fake.rejected_429() == 0
    for i, text in enumerate(texts):
        assert _texts(fake, GROUP - i) == [text.strip()]


async def test_finish_while_the_first_message_is_in_flight(
    fake: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request is not cancelled (that could orphan a message) and nothing hangs."""
    entered, release = asyncio.Event(), asyncio.Event()
    send_message = bot.send_message

    async def held_send(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await send_message(*args, **kwargs)

    monkeypatch.setattr(bot, "send_message", held_send)
    writer = _delivery(bot).writer(chat_id=GROUP, is_private=False)
    assert isinstance(writer, EditWriter)
    writer.update("Four")
    await asyncio.wait_for(entered.wait(), 5)
    finishing = asyncio.create_task(writer.finish("Four."))
    deadline = time.monotonic() + 5
    while not writer._chain.stopping:  # finish() is now waiting for the request
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    release.set()
    await asyncio.wait_for(finishing, 5)
    assert _texts(fake, GROUP) == ["Four."]
    assert len(fake.calls_of("sendMessage")) == 1


async def test_aclose_sends_nothing_more(fake: FakeTelegram, bot: Bot) -> None:
    writer = _delivery(bot, edit_interval=5).writer(chat_id=GROUP, is_private=False)
    writer.update("Beginning")
    await fake.wait_for(lambda: bool(fake.chat_messages(GROUP)), 5, "the first message")
    writer.update("Beginning and more")
    await writer.aclose()
    calls = len(fake.calls)
    writer.update("ignored")
    await writer.aclose()
    assert len(fake.calls) == calls
    assert _texts(fake, GROUP) == ["Beginning"]


# -- DraftWriter -----------------------------------------------------------------------------


async def test_drafts_then_one_real_message(fake: FakeTelegram, bot: Bot) -> None:
    writer = _delivery(bot, draft_interval=0.1).writer(chat_id=PRIVATE, is_private=True)
    assert isinstance(writer, DraftWriter)
    await writer.begin()
    started = time.monotonic()
    writer.update("Hi")
    await fake.wait_for(lambda: bool(fake.calls_of("sendMessageDraft")), 5, "the first draft")
    assert fake.calls_of("sendMessageDraft")[0].at - started < 0.4
    text = await _stream(writer, _words(80), pause=0.01)
    await writer.finish("Hi " + text)

    assert writer.draft_id is not None
    (key,) = fake.drafts
    assert key == (PRIVATE, writer.draft_id)
    draft = fake.drafts[key]
    assert draft.can_stop
    assert draft.texts[0] == "Hi"
    calls = fake.calls_of("sendMessageDraft")
    assert 3 <= len(calls) <= (calls[-1].at - calls[0].at) / 0.1 + 2
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.09 for gap in gaps), gaps
    assert _texts(fake, PRIVATE) == [("Hi " + text).strip()]
    assert fake.calls_of("editMessageText") == []
    assert writer.first_visible_at is not None
    assert writer.first_visible_at - started < 0.4


async def test_draft_shows_the_tail_of_a_long_answer(fake: FakeTelegram, bot: Bot) -> None:
    answer = _long_answer()
    writer = _delivery(bot, draft_interval=0.02).writer(chat_id=PRIVATE, is_private=True)
    await _stream(writer, [answer[i : i + 300] for i in range(0, len(answer), 300)], 0.01)
    await writer.finish(answer)
    draft = next(iter(fake.drafts.values()))
    assert all(0 < utf16_len(text) <= 4000 for text in draft.texts)
    messages = fake.chat_messages(PRIVATE)
    assert len(messages) >= 3
    # each draft showed the message being written: it starts where a final message starts
    for text in draft.texts:
        assert any(m.text.startswith(text[:40]) for m in messages), text[:40]
    assert _squash("".join(m.text for m in messages)) == _squash(render(answer).text)


async def test_unsupported_drafts_fall_back_to_edits_and_are_remembered() -> None:
    async with FakeTelegram(drafts_supported=False) as fake:
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
        client = Bot(fake.token, session=session)
        try:
            delivery = _delivery(client)
            writer = delivery.writer(chat_id=PRIVATE, is_private=True)
            assert isinstance(writer, DraftWriter)
            writer.update("Hello")
            await fake.wait_for(lambda: bool(fake.chat_messages(PRIVATE)), 5, "a message")
            assert not delivery.outlet.drafts_available
            text = await _stream(writer, _words(30), pause=0.01)
            await writer.finish("Hello " + text)
            assert _texts(fake, PRIVATE) == [("Hello " + text).strip()]
            assert len(fake.calls_of("sendMessageDraft")) == 1
            assert writer.message_ids == [fake.chat_messages(PRIVATE)[0].message_id]

            later = delivery.writer(chat_id=PRIVATE + 1, is_private=True)
            assert isinstance(later, EditWriter)
            await later.finish("Edited directly")
            assert len(fake.calls_of("sendMessageDraft")) == 1
        finally:
            await client.session.close()


async def test_draft_429_is_retried_later(fake: FakeTelegram, bot: Bot) -> None:
    writer = _delivery(bot).writer(chat_id=PRIVATE, is_private=True)
    fake.fail_next("sendMessageDraft", error_code=429, retry_after=1)
    writer.update("Slow")
    writer.update("Slow start")
    await fake.wait_for(lambda: fake.drafts != {}, 5, "a draft after the 429")
    (draft,) = fake.drafts.values()
    assert draft.texts == ["Slow start"]
    await writer.finish("Slow start, done")
    assert _texts(fake, PRIVATE) == ["Slow start, done"]


# -- PartTracker -----------------------------------------------------------------------------


def _prefixes(text: str, sizes: list[int]) -> list[str]:
    out, end = [], 0
    for size in sizes:
        end = min(len(text), end + size)
        out.append(text[:end])
    return [*out, text]


def _check_stream(answer: str, sizes: list[int], limit: int) -> None:
    tracker = PartTracker(limit)
    sealed: list[Any] = []
    for prefix in _prefixes(answer, sizes):
        parts = tracker.parts(prefix)
        for part in parts:
            assert 0 < utf16_len(part.text) <= limit
        assert parts[: len(sealed)] == sealed, "a sealed part changed"
        sealed = parts[: tracker.sealed_count]
    assert _squash("".join(p.text for p in parts)) == _squash(render(answer).text)


def test_tracker_seals_a_long_answer_in_place() -> None:
    _check_stream(_long_answer(), [37] * 400, 4000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(
        st.one_of(
            st.builds(lambda n: "para " + "text " * n, st.integers(1, 40)),
            st.builds(lambda n: "```js\n" + "code();\n" * n + "```", st.integers(1, 40)),
            st.builds(lambda n: "\n".join(f"- item {i}" for i in range(n)), st.integers(1, 20)),
            st.just("# Heading"),
            st.just("> quoted **bold** line"),
        ),
        min_size=1,
        max_size=12,
    ),
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=60),
    limit=st.integers(60, 400),
)
def test_tracker_parts_fit_and_sealed_parts_never_change(
    blocks: list[str], sizes: list[int], limit: int
) -> None:
    _check_stream("\n\n".join(blocks), sizes, limit)


def test_tracker_restarts_when_the_answer_is_replaced() -> None:
    tracker = PartTracker(50)
    tracker.parts("alpha beta gamma\n\n" * 30)
    assert tracker.sealed_count >= 1
    assert tracker.parts("delta") == [render("delta")]
    assert tracker.sealed_count == 0


def test_tracker_leaves_one_huge_line_to_the_text_splitter() -> None:
    tracker = PartTracker(50)
    parts = tracker.parts("alpha " * 30)
    assert tracker.sealed_count == 0
    assert len(parts) > 1
    assert all(utf16_len(p.text) <= 50 for p in parts)


async def test_drafts_found_unavailable_are_tried_again_later(bot: Bot) -> None:
    delivery = _delivery(bot)
    now = [100.0]
    delivery.outlet.clock = lambda: now[0]
    delivery.outlet.drafts_unavailable()
    assert isinstance(delivery.writer(chat_id=PRIVATE, is_private=True), EditWriter)
    now[0] += DRAFTS_RECHECK_SECONDS - 1
    assert isinstance(delivery.writer(chat_id=PRIVATE, is_private=True), EditWriter)
    now[0] += 1
    assert isinstance(delivery.writer(chat_id=PRIVATE, is_private=True), DraftWriter)
