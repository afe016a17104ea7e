"""Small translations from Telegram objects to the core's terms."""

from __future__ import annotations

from aiogram.types import Message

from bot.guards.admins import AdminChecker
from bot.sanitize import display_name, person_name
from bot.storage.keys import ConversationKey
from bot.streaming import StreamDelivery

# Telegram's placeholder sender of messages that anonymous group admins send.
ANONYMOUS_ADMIN_LABEL = "Group admin"


def conversation_key(message: Message) -> ConversationKey:
    """Private chats and groups are one conversation each; forum topics one per topic."""
    thread = message.message_thread_id if message.is_topic_message else None
    return ConversationKey(message.chat.id, thread)


def language(message: Message) -> str | None:
    return message.from_user.language_code if message.from_user else None


def is_private(message: Message) -> bool:
    return message.chat.type == "private"


def is_anonymous_admin(message: Message) -> bool:
    """Sent on behalf of the group itself: only its admins can do that."""
    return message.sender_chat is not None and message.sender_chat.id == message.chat.id


def from_person(message: Message) -> bool:
    """A person (or an anonymous admin) wrote it: not another bot, not a linked channel."""
    if message.sender_chat is not None:
        return is_anonymous_admin(message)
    return message.from_user is not None and not message.from_user.is_bot


def speaker(message: Message) -> str:
    if is_anonymous_admin(message) or message.from_user is None:
        return ANONYMOUS_ADMIN_LABEL
    user = message.from_user
    return display_name(user.first_name, user.last_name, user.id)


def user_name(message: Message) -> str | None:
    """The sender's name for a model that addresses the user (never their id); None when
    they have no visible name."""
    if is_anonymous_admin(message) or message.from_user is None:
        return ANONYMOUS_ADMIN_LABEL
    user = message.from_user
    return person_name(user.first_name, user.last_name) or None


def user_id(message: Message) -> int:
    """Who asked; an anonymous admin is identified by the group."""
    if is_anonymous_admin(message) or message.from_user is None:
        return message.chat.id
    return message.from_user.id


def set_by(message: Message) -> str:
    """How a persona's author is shown later."""
    return f"{speaker(message)} (id {user_id(message)})"


async def sender_administers(message: Message, admins: AdminChecker) -> bool:
    """Whether the sender may change how the bot behaves in this chat."""
    return await admins.may_administer(
        message.chat.id,
        user_id(message),
        is_private=is_private(message),
        anonymous_admin=is_anonymous_admin(message),
    )


async def reply(message: Message, delivery: StreamDelivery, text: str) -> None:
    """Answer in the message's chat and topic: a reply in groups, a plain message in a
    private chat. Through the flood limiter, as answers are (`StreamDelivery.reply`)."""
    key = conversation_key(message)
    reply_to = None if is_private(message) else message.message_id
    await delivery.reply(key.chat_id, text, thread_id=key.thread_id, reply_to=reply_to)
