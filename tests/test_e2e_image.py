"""/image end to end: the real dispatcher polling the fake Bot API, the real SDK asking the
fake GLM for a picture (which it serves itself), real Redis."""

from __future__ import annotations

from typing import Any

from tests.fakes.glm import Reply
from tests.fakes.glm_images import PICTURE, PictureReply
from tests.fakes.telegram_files import SentPhoto
from tests.harness import BotHarness, running_bot

ALICE, BOB = 7, 8
GROUP = -100777
IMAGE_MODEL = "cogview-3-flash"  # the shipped catalog's first image model
PRICED = {IMAGE_MODEL: {"kind": "image", "image_price": 0.25}}


async def draw(h: BotHarness, chat: int, command: str, *, user: int = ALICE) -> SentPhoto:
    """Send an /image command and wait for the photo."""
    before = len(h.tg.sent_photos)
    if chat == GROUP:
        h.tg.group_text(GROUP, user, command, first_name="Bob")
    else:
        h.tg.private_text(user, command)
    await h.tg.wait_for(lambda: len(h.tg.sent_photos) > before, what="a photo")
    await h.wait_idle()
    return h.tg.sent_photos[-1]


async def note(h: BotHarness, chat: int, command: str, *, user: int = ALICE) -> str:
    """Send a command and wait for the bot's text reply."""
    before = len(h.tg.chat_messages(chat))
    if chat == GROUP:
        h.tg.group_text(GROUP, user, command)
    else:
        h.tg.private_text(user, command)
    await h.wait_for_messages(chat, before + 1)
    await h.wait_idle()
    return h.last_text(chat)


def actions(h: BotHarness, chat: int) -> list[Any]:
    return [
        c.params.get("action")
        for c in h.tg.calls_of("sendChatAction")
        if c.params.get("chat_id") == chat
    ]


async def test_a_picture_is_drawn_uploaded_and_charged(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, models=PRICED) as h:
        photo = await draw(h, ALICE, "/image a red fox in the snow")
        assert photo.photo == PICTURE, "the picture's bytes are uploaded, not Zhipu's link"
        assert photo.caption == "a red fox in the snow"
        assert h.glm.images.requests == [{"model": IMAGE_MODEL, "prompt": "a red fox in the snow"}]
        assert h.glm.images.fetches == 1
        assert h.glm.requests == [], "no chat completion for a picture"
        assert "upload_photo" in actions(h, ALICE)

        usage = await note(h, ALICE, "/usage")
        assert f"{IMAGE_MODEL}: 1 picture, ≈ 0.2500 CNY" in usage
        assert "in 1 request, ≈ 0.2500 CNY" in usage, usage


async def test_in_a_group_the_picture_answers_the_command(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        photo = await draw(h, GROUP, "/image@glm_test_bot a lighthouse at dusk", user=BOB)
        assert photo.caption == "a lighthouse at dusk"
        assert photo.reply_to_message_id is not None, "a reply to the /image message"
        assert photo.photo == PICTURE


async def test_a_long_description_is_cut_to_the_caption_limit(
    redis_url: str, key_prefix: str
) -> None:
    description = "a very detailed fox " * 80  # 1,600 characters
    async with running_bot(redis_url, key_prefix) as h:
        photo = await draw(h, ALICE, f"/image {description}")
        assert h.glm.images.requests[0]["prompt"] == description.strip(), "GLM gets it whole"
        assert len(photo.caption) == 1024
        assert photo.caption.endswith("…")


async def test_no_description_gets_a_hint(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        hint = await note(h, ALICE, "/image")
        assert hint.startswith("Describe the picture after /image")
        assert h.glm.images.requests == []


async def test_a_refused_description_gets_a_clear_reply(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, models=PRICED) as h:
        h.glm.images.script(PictureReply(status=400, code="1301", message="unsafe"))
        refused = await note(h, ALICE, "/image something forbidden")
        assert refused.startswith("⚠️ The image model refused this description")
        h.glm.images.script(*[PictureReply(status=500)] * 3)  # every retry fails too
        failed = await note(h, ALICE, "/image a fox")
        assert failed == "⚠️ The picture could not be drawn this time. Please try again."
        assert h.tg.sent_photos == []
        assert "nothing yet" in await note(h, ALICE, "/usage"), "nothing drawn, nothing charged"


async def test_stop_while_drawing_sends_no_picture(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.images.script(PictureReply(delay=30))
        h.tg.private_text(ALICE, "/image a slow fox")
        await h.glm.wait_for(lambda: bool(h.glm.images.requests), what="the image request")
        h.tg.private_text(ALICE, "/stop")
        await h.glm.wait_for(lambda: h.glm.images.cancelled == 1, what="the request closed")
        await h.wait_for_messages(ALICE, 1)
        await h.wait_idle()
        assert h.texts(ALICE) == ["⏹ Stopped: no picture."]
        assert h.tg.sent_photos == []
        assert h.glm.images.fetches == 0


async def test_pictures_count_against_the_per_minute_limit(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, limits={"user_per_minute": 1}) as h:
        await draw(h, ALICE, "/image a fox")
        refused = await note(h, ALICE, "/image another fox")
        assert refused.startswith("⏳ You're writing faster than I may answer"), refused
        assert len(h.glm.images.requests) == 1


async def test_a_spent_daily_quota_refuses_pictures(redis_url: str, key_prefix: str) -> None:
    usage = {"prompt_tokens": 80, "completion_tokens": 40, "total_tokens": 120}
    reply = Reply(text="Hello from GLM!", usage=usage)
    async with running_bot(
        redis_url, key_prefix, reply=reply, limits={"user_daily_tokens": 100}
    ) as h:
        assert await note(h, ALICE, "hello") == "Hello from GLM!"
        refused = await note(h, ALICE, "/image a fox")
        assert refused.startswith("You've used your daily quota"), refused
        assert h.glm.images.requests == []
