"""The wall-clock records the benchmarks read from the fakes: /_fake/timeline, /_fake/timings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram, Limits

USER = 501
GROUP = -100777


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _call(
    http: aiohttp.ClientSession, tg: FakeTelegram, method: str, **params: Any
) -> dict[str, Any]:
    async with http.post(f"{tg.base_url}/bot{tg.token}/{method}", json=params) as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_timeline_records_push_delivery_and_visible_moments(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeTelegram(limits=Limits(per_chat_interval=10)) as tg:
        before = time.time()
        tg.private_text(USER, "hello")
        (update,) = (await _call(http, tg, "getUpdates"))["result"]
        await _call(http, tg, "sendChatAction", chat_id=USER, action="typing")
        await _call(http, tg, "sendMessageDraft", chat_id=USER, draft_id=7, text="")
        await _call(http, tg, "sendMessageDraft", chat_id=USER, draft_id=7, text="Hel")
        for text in ("Hello", "Hello!", "Hello!!", "Hello!!!"):  # burst of 3, then 429
            sent = await _call(http, tg, "sendMessage", chat_id=USER, text=text)
        assert sent["error_code"] == 429

        async with http.get(f"{tg.base_url}/_fake/timeline") as resp:
            timeline = await resp.json()
        (entry,) = timeline["updates"]
        assert entry["update_id"] == update["update_id"]
        assert entry["chat_id"] == USER
        assert before <= entry["pushed_at"] <= entry["delivered_at"] <= time.time()
        chat = timeline["chats"][str(USER)]
        assert chat["calls"] == 7
        assert chat["calls_by_method"]["sendMessageDraft"] == 2
        assert chat["refused_429"] == 1
        assert chat["messages"] == 3
        assert chat["text"] == "Hello\nHello!\nHello!!"
        assert chat["text_len"] == len(chat["text"])
        # the empty draft shows nothing; the one with text is the first visible moment
        assert entry["delivered_at"] <= chat["first_visible_at"] <= chat["last_shown_at"]
        assert timeline["stats"]["rejected_429"] == 1

        async with http.get(f"{tg.base_url}/_fake/timeline?texts=0") as resp:
            light = await resp.json()
        assert "text" not in light["chats"][str(USER)]
        assert light["chats"][str(USER)]["text_len"] == len(chat["text"])

        tg.reset()
        async with http.get(f"{tg.base_url}/_fake/timeline") as resp:
            assert (await resp.json())["chats"] == {}


async def test_timeline_last_shown_follows_edits_and_markup(http: aiohttp.ClientSession) -> None:
    async with FakeTelegram() as tg:
        tg.group_text(GROUP, USER, "@glm_test_bot hi")
        keyboard = {"inline_keyboard": [[{"text": "Stop", "callback_data": "stop"}]]}
        sent = await _call(http, tg, "sendMessage", chat_id=GROUP, text="a", reply_markup=keyboard)
        message_id = sent["result"]["message_id"]
        first = tg.timeline.chats[GROUP].first_visible_at
        await _call(http, tg, "editMessageText", chat_id=GROUP, message_id=message_id, text="ab")
        edited = tg.timeline.chats[GROUP].last_shown_at
        assert first is not None
        assert edited is not None
        assert edited >= first
        assert tg.timeline.chats[GROUP].first_visible_at == first

        async with http.get(f"{tg.base_url}/_fake/timeline") as resp:
            chat = (await resp.json())["chats"][str(GROUP)]
        assert chat["text"] == "ab"
        assert chat["markup"] is False  # an edit without reply_markup removes the keyboard


async def test_glm_timings_name_requests_and_time_tokens(http: aiohttp.ClientSession) -> None:
    reply = Reply(tokens=["a ", "b ", "c"], first_token_delay=0.05, token_interval=0.01)
    async with FakeGLM(default=reply) as glm:
        body = {
            "model": "glm-4",
            "stream": True,
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "chat 12 asks"},
            ],
        }
        async with http.post(f"{glm.api_base}/chat/completions", json=body) as resp:
            await resp.read()
        async with http.get(f"{glm.base_url}/_fake/timings") as resp:
            (timing,) = await resp.json()
        assert timing["user"] == "chat 12 asks"
        assert timing["pieces"] == 3
        assert timing["first_token_at"] - timing["received_at"] >= 0.05
        assert timing["last_chunk_at"] - timing["first_token_at"] >= 0.02

        glm.reset()
        async with http.get(f"{glm.base_url}/_fake/timings") as resp:
            assert await resp.json() == []


async def test_take_updates_hands_the_queue_over_once(http: aiohttp.ClientSession) -> None:
    async with FakeTelegram() as tg:
        tg.private_text(USER, "one")
        tg.private_text(USER + 1, "two")
        async with http.post(f"{tg.base_url}/_fake/take_updates") as resp:
            updates = (await resp.json())["updates"]
        assert [u["message"]["text"] for u in updates] == ["one", "two"]
        assert tg.pending_updates() == 0
        assert all("delivered_at" in u for u in tg.timeline.updates.values())
        async with http.post(f"{tg.base_url}/_fake/take_updates") as resp:
            assert (await resp.json())["updates"] == []
        # the chats know the messages, so replies to them resolve
        sent = await _call(http, tg, "sendMessage", chat_id=USER, text="re", reply_to_message_id=1)
        assert sent["ok"]
