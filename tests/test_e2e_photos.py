"""Photos end to end: real dispatcher, fake Telegram serving the files, fake GLM, real Redis."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest
from PIL import Image

from bot.config.media import MAX_JPEG_BYTES
from bot.texts import text
from tests.fakes.glm import Reply
from tests.harness import BotHarness, running_bot

USER = 2001
GROUP = -1002001
BOT = "@glm_test_bot"
VISION = "glm-4.6v-flash"  # the catalog's vision model (settings.toml)
TEXT_MODEL = "glm-4.7-flash"  # the default chat model: it cannot see


def photo_bytes(width: int = 3000, height: int = 2250, colour: str = "red") -> bytes:
    """A JPEG larger than the bot sends on (2048 px a side)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=95)
    return out.getvalue()


def images_in(message: dict[str, Any]) -> list[bytes]:
    """The decoded images of one GLM request message."""
    content = message["content"]
    if isinstance(content, str):
        return []
    return [
        base64.b64decode(part["image_url"]["url"], validate=True)
        for part in content
        if part["type"] == "image_url"
    ]


def text_in(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] == "text")


def assert_jpeg_within_limits(data: bytes) -> Image.Image:
    assert data[:2] == b"\xff\xd8", "a JPEG"
    assert len(data) <= MAX_JPEG_BYTES
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert max(image.size) <= 2048
    return image


async def answered(h: BotHarness, chat_id: int, count: int = 1) -> None:
    await h.wait_for_messages(chat_id, count)
    await h.wait_idle()


async def test_photo_question_goes_to_the_vision_model_as_base64(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.script(Reply(text="A red square."), Reply(text="Red."))
        h.tg.photo_message(USER, USER, photo_bytes(), caption="What is in this picture?")
        await answered(h, USER)
        assert h.last_text(USER) == "A red square."

        request = h.glm.requests[0]
        assert request["model"] == VISION, "the chat's model cannot see: the vision model"
        [question] = request["messages"]
        assert text_in(question) == "What is in this picture?"
        [jpeg] = images_in(question)
        image = assert_jpeg_within_limits(jpeg)
        assert image.size == (2048, 1536), "scaled down, proportions kept"
        assert image.getpixel((10, 10))[0] > 200, "the photo itself, not its thumbnail"

        # a follow-up question still sees the photo, from the cache: no second download
        h.tg.private_text(USER, "And what colour is it?")
        await answered(h, USER, 2)
        follow_up = h.glm.requests[1]
        assert follow_up["model"] == VISION
        first, _, last = follow_up["messages"]
        assert images_in(first) == [jpeg]
        assert last == {"role": "user", "content": "And what colour is it?"}
        [photo] = [call for call in h.tg.calls_of("getFile")]
        assert h.tg.downloads_of(photo.params["file_id"]) == 1
        assert not h.glm.violations

        # /reset forgets the photo like the text
        h.tg.private_text(USER, "/reset")
        await h.tg.wait_for(lambda: "forgotten" in h.last_text(USER), what="reset")
        h.tg.private_text(USER, "Anything to see?")
        await answered(h, USER, 4)
        assert h.glm.requests[2]["model"] == TEXT_MODEL
        assert h.glm.requests[2]["messages"] == [{"role": "user", "content": "Anything to see?"}]

    everything = json.dumps(h.glm.requests) + caplog.text
    assert h.tg.token not in everything, "the bot token never leaves the bot"
    assert "/file/bot" not in everything


async def test_no_caption_asks_to_describe_in_the_users_language(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.photo_message(USER, USER, photo_bytes(640, 480), language_code="zh-hans")
        await answered(h, USER)
        [question] = h.glm_messages()
        assert text_in(question) == text("image_describe", "zh")
        assert len(images_in(question)) == 1


async def test_an_image_sent_as_a_file_is_a_question(redis_url: str, key_prefix: str) -> None:
    out = io.BytesIO()
    Image.new("RGBA", (800, 600), (0, 0, 255, 128)).save(out, "PNG")
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.document_message(
            USER, USER, out.getvalue(), file_name="shot.png", mime_type="image/png", caption="?"
        )
        await answered(h, USER)
        [question] = h.glm_messages()
        [jpeg] = images_in(question)
        assert assert_jpeg_within_limits(jpeg).size == (800, 600)


async def test_group_photo_answered_when_its_caption_mentions_the_bot(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.photo_message(GROUP, USER, photo_bytes(), caption="a photo for the group")
        h.tg.photo_message(GROUP, USER, photo_bytes(), caption=f"{BOT} what is this?")
        await answered(h, GROUP)
        [request] = h.glm.requests
        assert request["model"] == VISION
        [question] = request["messages"]
        assert text_in(question) == "Alice: what is this?"
        assert len(images_in(question)) == 1
        [answer] = h.tg.chat_messages(GROUP)
        assert answer.reply_to_message_id == 2, "a reply to the photo that asked"


async def test_ask_in_reply_to_a_photo_is_about_it(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.photo_message(GROUP, USER, photo_bytes(1000, 800, "green"))
        h.tg.group_text(GROUP, USER, "/ask", reply_to_message_id=1)
        await answered(h, GROUP)
        [question] = h.glm_messages()
        assert text_in(question) == "Alice: " + text("image_describe")
        [jpeg] = images_in(question)
        assert assert_jpeg_within_limits(jpeg).size == (1000, 800)


async def test_an_album_is_one_question_with_all_its_images(
    redis_url: str, key_prefix: str
) -> None:
    colours = ["red", "green", "blue"]
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.album_messages(
            USER, USER, [photo_bytes(900, 600, c) for c in colours], caption="Compare them"
        )
        await answered(h, USER)
        assert len(h.tg.chat_messages(USER)) == 1, "one answer"
        [request] = h.glm.requests
        [question] = request["messages"]
        assert text_in(question) == "Compare them"
        seen = [Image.open(io.BytesIO(jpeg)).getpixel((5, 5)) for jpeg in images_in(question)]
        assert [max(range(3), key=lambda i, p=p: p[i]) for p in seen] == [0, 1, 2], "in order"
        assert len(h.app.dispatcher["albums"]) == 0, "nothing left collecting"


async def test_a_group_album_asks_with_its_caption(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.album_messages(GROUP, USER, [photo_bytes(600, 400)] * 2, caption=f"{BOT} which?")
        await answered(h, GROUP)
        [question] = h.glm_messages()
        assert text_in(question) == "Alice: which?"
        assert len(images_in(question)) == 2


async def test_an_unfetchable_old_image_is_left_out(redis_url: str, key_prefix: str) -> None:
    # no cache: every prompt fetches its images again
    async with running_bot(redis_url, key_prefix, media={"image_cache_mb": 0}) as h:
        h.tg.photo_message(USER, USER, photo_bytes(800, 600), caption="What is it?")
        await answered(h, USER)
        [photo_id] = {call.params["file_id"] for call in h.tg.calls_of("getFile")}
        h.tg.forget_file(photo_id)  # Telegram no longer serves it

        h.tg.private_text(USER, "Tell me more")
        await answered(h, USER, 2)
        request = h.glm.requests[1]
        assert request["model"] == TEXT_MODEL, "nothing left to see"
        first, _, last = request["messages"]
        assert first == {"role": "user", "content": "What is it?"}
        assert last == {"role": "user", "content": "Tell me more"}
        assert not h.glm.violations


async def test_an_album_whose_images_are_gone_is_still_a_question(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, media={"image_cache_mb": 0}) as h:
        h.tg.album_messages(USER, USER, [photo_bytes(300, 200)] * 2)
        await answered(h, USER)
        for file_id in {call.params["file_id"] for call in h.tg.calls_of("getFile")}:
            h.tg.forget_file(file_id)
        h.tg.photo_message(USER, USER, photo_bytes(300, 200), caption="and this one?")
        await answered(h, USER, 2)
        first, _, last = h.glm_messages()
        assert len(images_in(last)) == 1
        assert images_in(first) == []
        assert text_in(first) == text("images_describe")
        assert not h.glm.violations


async def test_files_too_large_or_unreadable_get_a_reply(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.document_message(
            USER, USER, b"", file_name="huge.png", mime_type="image/png", size=25 * 2**20
        )
        await h.tg.wait_for(lambda: h.last_text(USER) == text("file_too_large"), what="reply")
        # reported small in the update, refused by getFile: told in the answer's place
        h.tg.photo_message(USER, USER, b"")
        h.tg.last_file.size = 25 * 2**20
        await h.tg.wait_for(lambda: len(h.texts(USER)) == 2, what="second reply")
        assert h.texts(USER)[1] == text("file_too_large")
        h.tg.document_message(USER, USER, b"not an image", file_name="x.png", mime_type="image/png")
        await h.tg.wait_for(
            lambda: text("image_unreadable") in h.last_text(USER), what="unreadable reply"
        )
        await h.wait_idle()
        assert not h.glm.requests, "nothing reached GLM"


async def test_an_album_being_collected_is_answered_at_shutdown(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, media={"album_window": 10}) as h:
        h.tg.album_messages(USER, USER, [photo_bytes(300, 200)] * 2, caption="both?")
        albums = h.app.dispatcher["albums"]
        await h.tg.wait_for(lambda: albums.images == 2, what="both photos collected")
        await h.tg.wait_for(lambda: h.app.turns.in_flight == 1, what="the album's turn")
    # leaving the block stopped the bot: it answered first, with both photos
    assert [m.text for m in h.tg.chat_messages(USER)] == ["Hello from GLM!"]
    [question] = h.glm_messages()
    assert len(images_in(question)) == 2


async def test_stop_during_an_album_stops_its_answer(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.album_messages(USER, USER, [photo_bytes(300, 200)] * 2)
        await h.tg.wait_for(lambda: h.app.turns.in_flight == 1, what="the album's turn")
        h.tg.private_text(USER, "/stop")
        await h.wait_idle()
        assert h.texts(USER) == [text("stopped")]
        assert not h.glm.requests, "stopped before GLM was asked"
        assert len(h.app.dispatcher["albums"]) == 0


async def test_an_album_counts_once_against_the_limits(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, limits={"user_per_minute": 1}) as h:
        h.tg.album_messages(USER, USER, [photo_bytes(300, 200)] * 3, caption="one question")
        await answered(h, USER)
        assert h.texts(USER) == ["Hello from GLM!"], "no refusal for the album's other photos"
        h.tg.photo_message(USER, USER, photo_bytes(300, 200), caption="a second one")
        await h.tg.wait_for(lambda: "Try again" in h.last_text(USER), what="limit reply")
        await h.wait_idle()
        assert len(h.glm.requests) == 1


async def test_strangers_photos_are_never_downloaded(redis_url: str, key_prefix: str) -> None:
    stranger = 666
    async with running_bot(redis_url, key_prefix, access={"mode": "allowlist"}) as h:
        h.tg.photo_message(stranger, stranger, photo_bytes(300, 200), caption="hi")
        await h.tg.wait_for(lambda: "private bot" in h.last_text(stranger), what="refusal")
        h.tg.album_messages(stranger, stranger, [photo_bytes(300, 200)] * 2)
        await h.wait_idle()
        assert not h.tg.calls_of("getFile")
        assert not h.glm.requests


async def test_redis_outage_gets_the_storage_notice(own_redis: Any, key_prefix: str) -> None:
    async with running_bot(own_redis.url, key_prefix) as h:
        own_redis.stop()
        h.tg.photo_message(USER, USER, photo_bytes(300, 200), caption="what is it?")
        await h.tg.wait_for(
            lambda: "temporarily unavailable" in h.last_text(USER), timeout=20, what="notice"
        )
        own_redis.start()
        assert not h.glm.requests
