"""Feeding updates into the fake Telegram: realistic messages, callbacks and draft stops."""

from __future__ import annotations

from typing import Any

from tests.fakes.telegram_methods import BotApiMethods
from tests.fakes.telegram_state import member_object

_MESSAGE_KEYS = ("message", "edited_message", "channel_post", "edited_channel_post")


class UpdateFeeder(BotApiMethods):
    """Builds updates the way Telegram shapes them and queues them for getUpdates."""

    def push_update(self, update: dict[str, Any], *, filtered: bool = True) -> int:
        """Queue an update for getUpdates (update_id assigned when missing); returns its id.

        ``filtered=False`` delivers it whatever allowed_updates says, as a Bot API newer
        than the bot may deliver a type the bot could not have named.
        """
        for key in _MESSAGE_KEYS:
            message = update.get(key)
            if isinstance(message, dict):
                self.remember_message(message)
        query = update.get("callback_query")
        if isinstance(query, dict) and query.get("id") is not None:
            self._open_callbacks.add(str(query["id"]))
        update_id = self._updates.push(update, filtered=filtered)
        self.timeline.pushed(update_id, update)
        self._notify_change()
        return update_id

    def _new_user(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        self.remember_user(user)
        return user

    def _reply_for_update(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        chat = self.chat(chat_id)
        sent = chat.bot_messages.get(message_id)
        if sent is not None and sent.deleted:
            return None  # Telegram leaves reply_to_message out when the original is gone
        target = self.message_dict(chat, message_id, nested=True)
        if target is None:
            raise ValueError(f"no message {message_id} in chat {chat_id} to reply to")
        return target

    def private_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Alice",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        entities: list[dict[str, Any]] | None = None,
        reply_to_message_id: int | None = None,
    ) -> int:
        """Push a private-chat text message from ``user_id``; returns the update_id."""
        user = self._new_user(
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        chat = self.chat(user_id)
        chat.type, chat.first_name, chat.last_name = "private", first_name, last_name
        chat.username = username
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": user,
            "chat": chat.as_dict(),
            "date": self.now_date(),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if reply_to_message_id is not None:
            target = self._reply_for_update(user_id, reply_to_message_id)
            if target is not None:
                message["reply_to_message"] = target
        return self.push_update({"message": message})

    def group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        first_name: str = "Alice",
        username: str | None = None,
        language_code: str | None = "en",
        entities: list[dict[str, Any]] | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        is_forum: bool = False,
        sender_chat: dict[str, Any] | None = None,
        chat_title: str = "Test group",
        from_is_bot: bool = False,
    ) -> int:
        """Push a supergroup text message; returns the update_id.

        In a forum topic a message that is not a reply gets ``reply_to_message`` = the
        topic-creation message, as Telegram does.
        """
        user = self._new_user(
            user_id,
            first_name,
            username=username,
            language_code=language_code,
            is_bot=from_is_bot,
        )
        chat = self.chat(chat_id)
        chat.type, chat.title, chat.is_forum = "supergroup", chat_title, is_forum
        chat_dict = chat.as_dict()
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": user,
            "chat": chat_dict,
            "date": self.now_date(),
            "text": text,
        }
        if sender_chat is not None:
            message["sender_chat"] = sender_chat
        if entities:
            message["entities"] = entities
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            if is_forum:
                message["is_topic_message"] = True
        if reply_to_message_id is not None:
            target = self._reply_for_update(chat_id, reply_to_message_id)
            if target is not None:
                message["reply_to_message"] = target
        elif is_forum and message_thread_id is not None:
            message["reply_to_message"] = {
                "message_id": message_thread_id,
                "from": user,
                "chat": chat_dict,
                "date": message["date"],
                "message_thread_id": message_thread_id,
                "forum_topic_created": {
                    "name": f"Topic {message_thread_id}",
                    "icon_color": 7322096,
                },
            }
        return self.push_update({"message": message})

    def push_message(self, message: dict[str, Any], *, edited: bool = False) -> int:
        """Push any message dict (sticker, photo, service message...); fills message_id/date."""
        chat_dict = message.get("chat")
        if not isinstance(chat_dict, dict) or not isinstance(chat_dict.get("id"), int):
            raise ValueError("push_message needs message['chat']['id']")
        chat = self.chat(chat_dict["id"])
        if "type" not in chat_dict:
            message["chat"] = {**chat.as_dict(), **chat_dict}
        if "message_id" not in message:
            message["message_id"] = chat.take_message_id()
        message.setdefault("date", self.now_date())
        if edited:
            message.setdefault("edit_date", self.now_date())
        return self.push_update({"edited_message" if edited else "message": message})

    def change_member(
        self, chat_id: int, user_id: int, status: str, *, by: int | None = None
    ) -> int:
        """Change a member's status (as set_member does) and push the ``chat_member``
        update Telegram sends to a bot that is an admin of the group; returns its id.

        Delivered only to a bot whose allowed_updates name ``chat_member``, as Telegram does.
        """
        old = self.chat_member(chat_id, user_id)
        self.set_member(chat_id, user_id, status)  # type: ignore[attr-defined]
        actor = self._users.get(by) if by is not None else None
        event = {
            "chat": self.chat(chat_id).as_dict(),
            "from": actor or self.user(user_id),
            "date": self.now_date(),
            "old_chat_member": old,
            "new_chat_member": member_object(status, self.user(user_id)),
        }
        return self.push_update({"chat_member": event})

    def stop_generation(
        self, chat_id: int, draft_id: int, message_thread_id: int | None = None
    ) -> int:
        """Push ``stopped_message_generation``, as when the user presses a draft's Stop button."""
        payload: dict[str, Any] = {"chat": self.chat(chat_id).as_dict(), "draft_id": draft_id}
        if message_thread_id is not None:
            payload["message_thread_id"] = message_thread_id
        return self.push_update({"stopped_message_generation": payload})

    def press_button(
        self, chat_id: int, message_id: int, user_id: int, data: str, *, first_name: str = "Alice"
    ) -> int:
        """Push a callback_query from ``user_id`` on the bot's message ``message_id``."""
        chat = self.chat(chat_id)
        sent = chat.bot_messages.get(message_id)
        if sent is None:
            raise ValueError(f"the bot sent no message {message_id} in chat {chat_id}")
        if sent.deleted:
            message = {"chat": chat.as_dict(), "message_id": message_id, "date": 0}
        else:
            message = self.render(sent)
        user = self._users.get(user_id) or self._new_user(user_id, first_name)
        query_id = str(self._next_callback_id)
        self._next_callback_id += 1
        query = {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": str((chat_id * 2654435761) & 0x7FFFFFFFFFFFFFFF),
            "data": data,
        }
        return self.push_update({"callback_query": query})
