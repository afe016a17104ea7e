"""Is a message meant for the bot, and what is the question (without the @mention)?

The filters at the end decide it for the GLM handlers and put the answer in handler data:
``question`` (the text to send to GLM, "" when there is none) and, for group text,
``addressed`` (whether the person spoke to the bot at all). The handler and the guard
middleware (`handlers.guards`) both read what the filter decided.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.filters import CommandObject
from aiogram.types import Message, User

from bot.sanitize import clean_text, is_blank
from bot.texts import text as say
from handlers.context import language
from handlers.images import has_image

# the handler data keys the filters set
QUESTION = "question"
ADDRESSED = "addressed"


# Entity offsets count UTF-16 code units, not Python characters. "surrogatepass": a
# message may hold a lone surrogate, on which aiogram's entity.extract_from() raises.
def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


def _entity_text(text: str, offset: int, length: int) -> str:
    return _utf16(text)[offset * 2 : (offset + length) * 2].decode("utf-16-le", "replace")


def _cut_utf16(text: str, offset: int, length: int) -> str:
    units = _utf16(text)
    start, end = offset * 2, (offset + length) * 2
    kept = units[:start] + _utf16(" ") + units[end:]
    return kept.decode("utf-16-le", "replace")


def strip_mentions(message: Message, me: User) -> tuple[str, bool]:
    """The text (or a media message's caption) without mentions of the bot, and whether
    there was one."""
    if message.text is not None:
        text, entities = message.text, message.entities
    else:
        text, entities = message.caption or "", message.caption_entities
    username = f"@{me.username}".lower() if me.username else None
    mentioned = False
    # cut from the end so earlier offsets stay valid
    for entity in sorted(entities or [], key=lambda e: e.offset, reverse=True):
        is_me = False
        if entity.type == "mention" and username is not None:
            is_me = _entity_text(text, entity.offset, entity.length).lower() == username
        elif entity.type == "text_mention" and entity.user is not None:
            is_me = entity.user.id == me.id
        if is_me:
            mentioned = True
            text = _cut_utf16(text, entity.offset, entity.length)
    return clean_text(text).strip(), mentioned


def replies_to_bot(message: Message, me: User) -> bool:
    reply = message.reply_to_message
    if reply is None or reply.from_user is None or reply.from_user.id != me.id:
        return False
    # In a forum topic every message "replies" to the topic's first message: not to us.
    if reply.forum_topic_created is not None:
        return False
    return not (message.is_topic_message and reply.message_id == message.message_thread_id)


def _question(text: str) -> str:
    """The question, or "" when nothing visible is left."""
    return "" if is_blank(text) else text


def _about_reply(message: Message, question: str) -> str:
    """A question with nothing visible, in reply to an image, asks to describe it."""
    if question or not has_image(message.reply_to_message):
        return question
    return say("image_describe", language(message))


async def private_question(message: Message) -> dict[str, Any] | bool:
    """Private text: any text is a question, except an unknown /command."""
    if message.text is None:
        return False
    question = clean_text(message.text).strip()
    return {QUESTION: "" if question.startswith("/") else _question(question)}


async def ask_question(message: Message, command: CommandObject) -> dict[str, Any]:
    """/ask <question>, after aiogram's Command filter."""
    return {QUESTION: _about_reply(message, _question(clean_text(command.args or "").strip()))}


async def group_question(message: Message, bot: Bot) -> dict[str, Any] | bool:
    """Group text: a question when it mentions or replies to the bot."""
    if message.text is None:
        return False
    me = await bot.me()
    question, mentioned = strip_mentions(message, me)
    addressed = mentioned or replies_to_bot(message, me)
    question = _about_reply(message, _question(question)) if addressed else ""
    return {ADDRESSED: addressed, QUESTION: question}
