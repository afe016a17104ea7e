"""Voice messages, audio files and documents: questions, like text.

In a private chat every one is a question; in a group, one that replies to the bot or
whose caption mentions it. A voice message's transcript is the question; a document's
caption is (no caption: "summarise this"), with the document's text joined to it. The
handler only describes what was sent: the turn downloads and reads it in its place in
the conversation's line (`bot.media.inputs`), so order, /stop and crash notices hold.
Images sent as files are left to the photo handlers.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Router
from aiogram.types import Message

from bot.media.inputs import MediaInputs
from bot.messages import TextPart
from bot.streaming import StreamDelivery
from bot.texts import text
from bot.turns.queue import TurnQueue
from bot.turns.types import PendingInput, Turn
from handlers.addressing import ADDRESSED, QUESTION, replies_to_bot, strip_mentions
from handlers.context import conversation_key, is_private, language, speaker, user_id
from handlers.filters import inline


def _is_voice(message: Message) -> bool:
    return message.voice is not None or message.audio is not None or message.video_note is not None


def _is_document(message: Message) -> bool:
    document = message.document
    if document is None:
        return False
    # images sent "as a file" are photos (handlers for photos)
    return not (document.mime_type or "").lower().startswith("image/")


async def _addressed(message: Message, bot: Bot) -> tuple[bool, str]:
    """Whether a media message speaks to the bot, and its caption without the mention."""
    caption = message.caption or ""
    if is_private(message):
        return True, caption.strip()
    me = await bot.me()
    caption, mentioned = strip_mentions(message, me)
    return mentioned or replies_to_bot(message, me), caption


async def voice_question(message: Message, bot: Bot) -> dict[str, Any] | bool:
    """A voice message, audio file or video note for the bot. The question is known only
    once transcribed: the placeholder counts it against the limits as a question."""
    if not _is_voice(message):
        return False
    addressed, _ = await _addressed(message, bot)
    if not addressed:
        return False
    return {ADDRESSED: True, QUESTION: text("voice_placeholder", language(message))}


async def document_question(message: Message, bot: Bot) -> dict[str, Any] | bool:
    """A document for the bot; the question is its caption, or "summarise this"."""
    if not _is_document(message):
        return False
    addressed, caption = await _addressed(message, bot)
    if not addressed:
        return False
    question = caption or text("document_question", language(message))
    return {ADDRESSED: True, QUESTION: question}


async def on_voice(
    message: Message, question: str, turns: TurnQueue, delivery: StreamDelivery, media: MediaInputs
) -> None:
    sent = message.voice or message.audio or message.video_note
    assert sent is not None  # the filter saw one
    pending = media.voice(sent.file_id, seconds=sent.duration, size=sent.file_size)
    await _submit(message, question, pending, turns, delivery)


async def on_document(
    message: Message, question: str, turns: TurnQueue, delivery: StreamDelivery, media: MediaInputs
) -> None:
    document = message.document
    assert document is not None  # the filter saw one
    pending = media.document(
        document.file_id,
        name=document.file_name,
        mime=document.mime_type,
        size=document.file_size,
        question=question,
    )
    # what a crash notice quotes until the document is read
    shown = f"{question}\n\n📄 {document.file_name or 'document'}"
    await _submit(message, shown, pending, turns, delivery)


async def _submit(
    message: Message,
    question: str,
    pending: PendingInput,
    turns: TurnQueue,
    delivery: StreamDelivery,
) -> None:
    key = conversation_key(message)
    private = is_private(message)
    turn = Turn(
        key=key,
        parts=(TextPart(question),),
        user_id=user_id(message),
        speaker=None if private else speaker(message),
        language=language(message),
        pending=pending,
    )
    writer = delivery.writer(
        chat_id=key.chat_id,
        is_private=private,
        thread_id=key.thread_id,
        reply_to_message_id=None if private else message.message_id,
        stop_button=not private,
    )
    # returns once the turn is queued: the download and reading happen in its place
    await turns.submit(turn, writer)


def create_router() -> Router:
    """For private chats and groups alike: the filters tell them apart."""
    router = Router(name=__name__)
    router.message.register(on_voice, inline(_is_voice), voice_question)
    router.message.register(on_document, inline(_is_document), document_question)
    return router
