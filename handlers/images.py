"""Which image a Telegram message carries, as the part a question holds.

A photo comes in several sizes: the largest one the bot may download is taken (the
model's limits are met later, when it is re-encoded). An image sent as a file is a
document with an image type. Only the file_id is kept: the bytes are fetched when a
prompt needs them (`bot.media.source`).
"""

from __future__ import annotations

from aiogram.types import Message

from bot.media.files import FileTooLarge, check_size
from bot.messages import ImagePart

__all__ = ["FileTooLarge", "has_image", "image_part", "replied_image"]


def _is_image_document(message: Message) -> bool:
    document = message.document
    mime = document.mime_type if document is not None else None
    return mime is not None and mime.startswith("image/")


def has_image(message: Message | None) -> bool:
    """A photo, or an image sent as a file."""
    return message is not None and (bool(message.photo) or _is_image_document(message))


def image_part(message: Message) -> ImagePart | None:
    """The message's image by reference (None without one); FileTooLarge when even its
    smallest size is beyond what a bot may download."""
    if message.photo:
        sizes = sorted(message.photo, key=lambda size: size.width * size.height)
        for size in reversed(sizes):
            try:
                check_size(size.file_size)
            except FileTooLarge:
                continue
            return ImagePart(size.file_id)
        check_size(sizes[0].file_size)  # raises: none of them fits
    if _is_image_document(message) and message.document is not None:
        check_size(message.document.file_size)
        return ImagePart(message.document.file_id)
    return None


def replied_image(message: Message) -> tuple[ImagePart, ...]:
    """The image of the message this one replies to, if any (e.g. /ask about a photo)."""
    reply = message.reply_to_message
    if reply is None or not has_image(reply):
        return ()
    part = image_part(reply)
    return () if part is None else (part,)
