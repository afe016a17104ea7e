"""State of the fake Telegram: public records, flood control, chats and message rendering."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Limits:
    """Telegram-like flood limits; all off by default."""

    per_chat_interval: float | None = None  # min seconds between sends in one chat (burst of 3)
    group_per_minute: int | None = None  # per group chat (chat_id < 0), sliding 60 s window
    global_per_second: int | None = None  # whole bot, sliding 1 s window
    retry_after: int = 1  # seconds put in the 429 answer
    count_drafts: bool = False  # whether sendMessageDraft counts against the limits


@dataclass
class ApiCall:
    """One request, recorded on arrival; the outcome fields are set when it is answered."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when the request arrived
    ok: bool
    error_code: int | None
    description: str | None


@dataclass
class SentMessage:
    message_id: int
    chat_id: int
    text: str
    entities: list[dict[str, Any]]
    parse_mode: str | None
    reply_to_message_id: int | None
    message_thread_id: int | None
    reply_markup: dict[str, Any] | None
    edits: int = 0
    deleted: bool = False
    history: list[str] = field(default_factory=list)
    date: int = 0
    edit_date: int | None = None
    photo: list[dict[str, Any]] | None = None  # a sendPhoto: its sizes; text is the caption


@dataclass
class Draft:
    chat_id: int
    draft_id: int
    message_thread_id: int | None
    texts: list[str]
    can_stop: bool


BURST = 3  # messages a chat may send back to back before per_chat_interval applies


class FloodControl:
    """Per-chat token bucket, per-group and global sliding windows, and refusal windows."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}  # chat -> (tokens, at)
        self._group_windows: dict[int, deque[float]] = {}
        self._global_window: deque[float] = deque()
        self._chat_blocked: dict[int, float] = {}
        self._global_blocked = 0.0

    def admit(self, lim: Limits, chat_id: int, now: float) -> int | None:
        """Record one send in ``chat_id``, or return the retry_after of a refusal."""
        if self._global_blocked > now:
            return max(1, math.ceil(self._global_blocked - now))
        blocked = self._chat_blocked.get(chat_id)
        if blocked is not None:
            if blocked > now:
                return max(1, math.ceil(blocked - now))
            del self._chat_blocked[chat_id]
        retry = lim.retry_after
        if lim.global_per_second:
            window = self._global_window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= lim.global_per_second:
                self._global_blocked = now + retry
                return retry
        tokens = float(BURST)
        if lim.per_chat_interval:
            tokens, at = self._buckets.get(chat_id, (float(BURST), now))
            tokens = min(float(BURST), tokens + (now - at) / lim.per_chat_interval)
            if tokens < 1.0:
                self._buckets[chat_id] = (tokens, now)
                self._chat_blocked[chat_id] = now + retry
                return retry
        group_window = None
        if lim.group_per_minute and chat_id < 0:
            group_window = self._group_windows.setdefault(chat_id, deque())
            while group_window and group_window[0] <= now - 60.0:
                group_window.popleft()
            if len(group_window) >= lim.group_per_minute:
                self._chat_blocked[chat_id] = now + retry
                return retry
        # every limit agreed: only now consume, so a refusal costs nothing
        if lim.global_per_second:
            self._global_window.append(now)
        if lim.per_chat_interval:
            self._buckets[chat_id] = (tokens - 1.0, now)
        if group_window is not None:
            group_window.append(now)
        return None


@dataclass
class ChatState:
    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    is_forum: bool = False
    next_message_id: int = 1
    bot_messages: dict[int, SentMessage] = field(default_factory=dict)  # send order
    user_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, str] = field(default_factory=dict)
    drafts: dict[int, Draft] = field(default_factory=dict)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def saw_message_id(self, message_id: int) -> None:
        if message_id >= self.next_message_id:
            self.next_message_id = message_id + 1

    def as_dict(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            chat["first_name"] = self.first_name or "User"
            if self.last_name:
                chat["last_name"] = self.last_name
        else:
            chat["title"] = self.title or "Test group"
            if self.is_forum:
                chat["is_forum"] = True
        if self.username:
            chat["username"] = self.username
        return chat


class StateBase:
    """Chats, users and message rendering shared by the API handlers and the test helpers."""

    token: str
    bot_id: int
    bot_username: str

    def _init_state(self) -> None:
        self._chats: dict[int, ChatState] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self.drafts: dict[tuple[int, int], Draft] = {}
        self.messages_sent = 0
        self.messages_edited = 0
        self.draft_updates = 0
        self._change_event: asyncio.Event | None = None

    def _notify_change(self) -> None:
        """Wake wait_for() callers so they re-check their predicate."""
        event, self._change_event = self._change_event, None
        if event is not None:
            event.set()

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "GLM Test Bot",
            "username": self.bot_username,
        }

    @staticmethod
    def now_date() -> int:
        return int(time.time())

    def chat(self, chat_id: int) -> ChatState:
        """The chat, created on first use (private for positive ids, supergroup otherwise)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_id > 0:
                user = self._users.get(chat_id, {})
                chat = ChatState(
                    chat_id,
                    "private",
                    first_name=user.get("first_name", "User"),
                    last_name=user.get("last_name"),
                    username=user.get("username"),
                )
            else:
                chat = ChatState(chat_id, "supergroup", title="Test group")
            self._chats[chat_id] = chat
        return chat

    def user(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_id:
            return self.bot_user
        known = self._users.get(user_id)
        if known is not None:
            return known
        return {"id": user_id, "is_bot": False, "first_name": "User"}

    def remember_user(self, user: dict[str, Any]) -> None:
        if isinstance(user.get("id"), int):
            self._users[user["id"]] = user

    def remember_message(self, message: dict[str, Any]) -> None:
        """Index a message arriving in an update so replies to it resolve."""
        chat_dict = message.get("chat")
        message_id = message.get("message_id")
        if not isinstance(chat_dict, dict) or not isinstance(message_id, int):
            return
        chat_id = chat_dict.get("id")
        if not isinstance(chat_id, int):
            return
        chat = self.chat(chat_id)
        chat.type = chat_dict.get("type", chat.type)
        chat.title = chat_dict.get("title", chat.title)
        chat.is_forum = bool(chat_dict.get("is_forum", chat.is_forum))
        if chat.type == "private":
            chat.first_name = chat_dict.get("first_name", chat.first_name)
            chat.last_name = chat_dict.get("last_name", chat.last_name)
        chat.username = chat_dict.get("username", chat.username)
        chat.saw_message_id(message_id)
        chat.user_messages[message_id] = message
        sender = message.get("from")
        if isinstance(sender, dict) and sender.get("id") != self.bot_id:
            self.remember_user(sender)

    def render(self, sent: SentMessage, *, nested: bool = False) -> dict[str, Any]:
        """A bot message as a Bot API Message object."""
        chat = self.chat(sent.chat_id)
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": self.bot_user,
            "chat": chat.as_dict(),
            "date": sent.date,
        }
        if sent.photo is not None:
            message["photo"] = sent.photo
            if sent.text:
                message["caption"] = sent.text
            if sent.entities:
                message["caption_entities"] = sent.entities
        else:
            message["text"] = sent.text
            if sent.entities:
                message["entities"] = sent.entities
        if sent.message_thread_id is not None and (chat.is_forum or chat.type == "private"):
            message["message_thread_id"] = sent.message_thread_id
            message["is_topic_message"] = True
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        if sent.reply_markup is not None:
            message["reply_markup"] = sent.reply_markup
        if not nested and sent.reply_to_message_id is not None:
            target = self.message_dict(chat, sent.reply_to_message_id, nested=True)
            if target is not None:
                message["reply_to_message"] = target
        return message

    def message_dict(
        self, chat: ChatState, message_id: int, *, nested: bool = False
    ) -> dict[str, Any] | None:
        """Any live message of the chat (the bot's or a user's), or None."""
        sent = chat.bot_messages.get(message_id)
        if sent is not None:
            return None if sent.deleted else self.render(sent, nested=nested)
        message = chat.user_messages.get(message_id)
        if message is None:
            return None
        if nested and "reply_to_message" in message:
            # Telegram never nests replies more than one level deep
            return {k: v for k, v in message.items() if k != "reply_to_message"}
        return message

    def chat_member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        chat = self.chat(chat_id)
        status = chat.members.get(user_id, "member")
        return member_object(status, self.user(user_id))


def member_object(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """A ChatMember of the given status with every field aiogram requires."""
    if status == "creator":
        return {"status": status, "user": user, "is_anonymous": False}
    if status == "administrator":
        rights = [
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
            "can_pin_messages",
            "can_manage_topics",
        ]
        member = {"status": status, "user": user, "can_be_edited": False, "is_anonymous": False}
        member.update(dict.fromkeys(rights, True))
        member["can_promote_members"] = False
        member["can_send_welcome_messages"] = False
        return member
    if status == "restricted":
        flags = [
            "can_send_audios",
            "can_send_documents",
            "can_send_photos",
            "can_send_videos",
            "can_send_video_notes",
            "can_send_voice_notes",
            "can_send_polls",
            "can_send_other_messages",
            "can_add_web_page_previews",
            "can_react_to_messages",
            "can_edit_tag",
            "can_change_info",
            "can_invite_users",
            "can_pin_messages",
            "can_manage_topics",
        ]
        member = {"status": status, "user": user, "is_member": True, "until_date": 0}
        member.update(dict.fromkeys(flags, False))
        member["can_send_messages"] = False
        return member
    if status == "kicked":
        return {"status": status, "user": user, "until_date": 0}
    return {"status": status, "user": user}


MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
