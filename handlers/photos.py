"""Photos, and images sent as files: a question about what they show.

In a private chat every image is a question; in a group, one whose caption mentions the
bot or starts with /ask, or that replies to the bot. The caption is the question, and no
caption asks to describe the image. An album (one update per photo) is one question:
the first photo that asks opens its turn and the others join it (`bot.media.albums`).

The turn carries the image by reference; it is downloaded, re-encoded and sent when the
answer starts, in the conversation's order (`bot.turns.answer`).
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.media.albums import Album, AlbumCollector
from bot.messages import ImagePart, Part, TextPart
from bot.sanitize import clean_text, is_blank
from bot.streaming import StreamDelivery
from bot.texts import text
from bot.turns.queue import TurnQueue
from bot.turns.types import Turn
from handlers.addressing import ADDRESSED, QUESTION, replies_to_bot, strip_mentions
from handlers.context import conversation_key, is_private, language, reply, speaker, user_id
from handlers.images import FileTooLarge, has_image, image_part

# handler data the filters set, besides the question
IMAGE = "image"
ALBUM = "album"
OPENS = "opens"
CAPTION = "caption"
TOO_LARGE = "too_large"


def _decide(
    message: Message, albums: AlbumCollector, addressed: bool, caption: str
) -> dict[str, Any] | bool:
    """What a filter puts in handler data: the question (only when this message asks
    one: the guard counts it), its image, and its album."""
    lang = language(message)
    try:
        image, too_large = image_part(message), False
    except FileTooLarge:
        image, too_large = None, True
    found: dict[str, Any] = {ADDRESSED: addressed, IMAGE: image, CAPTION: caption}
    found[TOO_LARGE] = too_large
    if message.media_group_id is None:
        if not addressed:
            return False
        found[QUESTION] = "" if too_large else caption or text("image_describe", lang)
        return found
    album = albums.album(message.chat.id, message.media_group_id, text("images_describe", lang))
    opens = addressed and not album.asked and not album.done
    if opens:
        album.asked = True  # now, before any await: the album's other photos only join
    found.update({ALBUM: album, OPENS: opens})
    found[QUESTION] = (caption or text("images_describe", lang)) if opens else ""
    return found


def _caption(message: Message) -> str:
    caption = clean_text(message.caption or "").strip()
    return "" if is_blank(caption) else caption


async def private_photo(message: Message, albums: AlbumCollector) -> dict[str, Any] | bool:
    if not has_image(message):
        return False
    return _decide(message, albums, True, _caption(message))


async def group_photo(message: Message, bot: Bot, albums: AlbumCollector) -> dict[str, Any] | bool:
    """Asks when the caption mentions the bot or the photo replies to it; an unaddressed
    photo of an album is still collected, in case a later one of it asks."""
    if not has_image(message):
        return False
    me = await bot.me()
    caption, mentioned = strip_mentions(message, me)
    caption = "" if is_blank(caption) else caption
    return _decide(message, albums, mentioned or replies_to_bot(message, me), caption)


async def ask_photo(
    message: Message, command: CommandObject, albums: AlbumCollector
) -> dict[str, Any] | bool:
    """/ask <question> as a photo's caption."""
    if not has_image(message):
        return False
    caption = clean_text(command.args or "").strip()
    return _decide(message, albums, True, "" if is_blank(caption) else caption)


async def on_photo(
    message: Message,
    question: str,
    turns: TurnQueue,
    delivery: StreamDelivery,
    image: ImagePart | None = None,
    caption: str = "",
    too_large: bool = False,
    album: Album | None = None,
    opens: bool = False,
) -> None:
    if too_large:
        await reply(message, delivery, text("file_too_large", language(message)))
    parts: tuple[Part, ...]
    if album is not None:
        album.add(message.message_id, image, caption)
        if not opens:
            return  # joined the album's question
        parts = album.parts()
    elif image is None or not question:
        return
    else:
        parts = (image, TextPart(question))
    await _submit(message, parts, album, turns, delivery)


async def _submit(
    message: Message,
    parts: tuple[Part, ...],
    album: Album | None,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    key = conversation_key(message)
    private = is_private(message)
    turn = Turn(
        key=key,
        parts=parts,
        user_id=user_id(message),
        speaker=None if private else speaker(message),
        language=language(message),
        arriving=album,
    )
    writer = delivery.writer(
        chat_id=key.chat_id,
        is_private=private,
        thread_id=key.thread_id,
        reply_to_message_id=None if private else message.message_id,
        stop_button=not private,
    )
    # returns once the turn is queued; the album's other photos join it meanwhile
    await turns.submit(turn, writer)


def create_private_router() -> Router:
    router = Router(name=f"{__name__}.private")
    router.message.register(on_photo, private_photo)
    return router


def create_group_router() -> Router:
    router = Router(name=f"{__name__}.groups")
    # a caption counts as a command's text: "/ask ..." under a photo asks about it
    router.message.register(on_photo, Command("ask"), ask_photo)
    router.message.register(on_photo, group_photo)
    return router
