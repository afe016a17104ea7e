"""Bot API methods of the fake Telegram, with Telegram's validation and error descriptions."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fakes.telegram_state import (
    Draft,
    FloodControl,
    Limits,
    SentMessage,
    StateBase,
)
from tests.fakes.telegram_text import (
    MAX_TEXT_UTF16,
    EntityParseError,
    FormattedText,
    UnsupportedParseModeError,
    format_text,
    utf16_len,
)
from tests.fakes.telegram_timeline import Timeline
from tests.fakes.telegram_updates import UpdateQueue

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "cancel",
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "record_audio",
        "upload_voice",
        "upload_audio",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")

Handler = Callable[[dict[str, Any]], Any]
AsyncHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _as_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class BotApiMethods(StateBase):
    """Handlers for the served methods; FakeTelegram adds the HTTP server and test helpers."""

    limits: Limits
    drafts_supported: bool
    clock: Callable[[], float]  # drives flood control; tests may swap in a manual clock

    def _init_methods(self) -> None:
        self._init_state()
        self._flood = FloodControl()
        self._updates = UpdateQueue()
        self.timeline = Timeline()
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.my_commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self._open_callbacks: set[str] = set()
        self._next_callback_id = 1

    def _sync_handlers(self) -> dict[str, Handler]:
        return {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
            "sendMessageDraft": self._send_message_draft,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "getChat": self._get_chat,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "answerCallbackQuery": self._answer_callback_query,
        }

    def _async_handlers(self) -> dict[str, AsyncHandler]:
        return {"getUpdates": self._get_updates}

    # -- parameters ---------------------------------------------------------------------------

    @staticmethod
    def _chat_id(params: dict[str, Any]) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat_id = _as_int(raw)
        if chat_id is None or chat_id == 0:
            # usernames (@channel) are not modelled; Telegram answers this for unknown ones
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _message_id(params: dict[str, Any]) -> int:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: inline messages are not supported by the fake")
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        return message_id

    @staticmethod
    def _optional_int(params: dict[str, Any], name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        value = _as_int(raw)
        if value is None:
            raise ApiError(400, f'Bad Request: invalid parameter "{name}"')
        return value

    @staticmethod
    def _formatted(params: dict[str, Any], *, allow_empty: bool = False) -> FormattedText:
        text = params.get("text")
        if text is None:
            text = ""
        elif not isinstance(text, str):
            text = str(text)
        if not text and not allow_empty:
            raise ApiError(400, "Bad Request: message text is empty")
        try:
            formatted = format_text(text, params.get("parse_mode"), params.get("entities"))
        except EntityParseError as exc:
            raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        except UnsupportedParseModeError as exc:
            raise ApiError(400, str(exc)) from None
        if not formatted.text and not allow_empty:
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(formatted.text) > MAX_TEXT_UTF16:
            raise ApiError(400, "Bad Request: message is too long")
        return formatted

    @staticmethod
    def _reply_markup(params: dict[str, Any], *, inline_only: bool) -> dict[str, Any] | None:
        """The inline keyboard to store (reply keyboards are accepted but never shown)."""
        raw = _as_json(params.get("reply_markup"))
        if raw is None or raw == "":
            return None
        if not isinstance(raw, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in raw:
            if inline_only:
                raise ApiError(400, "Bad Request: inline keyboard expected")
            return None
        rows = raw["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise ApiError(
                400,
                'Bad Request: can\'t parse inline keyboard button: Field "inline_keyboard" '
                "must be an Array of Arrays",
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise ApiError(
                        400,
                        "Bad Request: can't parse inline keyboard button: "
                        'Field "text" must be of type String',
                    )
                if not _BUTTON_ACTIONS.intersection(button):
                    raise ApiError(
                        400,
                        "Bad Request: can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard",
                    )
                data = button.get("callback_data")
                if data is not None and not (
                    isinstance(data, str) and 1 <= len(data.encode("utf-8")) <= 64
                ):
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        if not any(rows):
            return None
        return {"inline_keyboard": rows}

    def _admit(self, chat_id: int) -> None:
        retry = self._flood.admit(self.limits, chat_id, self.clock())
        if retry is not None:
            self.timeline.refused(chat_id)
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    # -- account and webhook ------------------------------------------------------------------

    @staticmethod
    def _true(params: dict[str, Any]) -> bool:
        return True

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = self._optional_int(params, "offset") or 0
        limit = self._optional_int(params, "limit") or 100
        timeout = self._optional_int(params, "timeout") or 0
        self._updates.set_allowed(_as_json(params.get("allowed_updates")))
        batch = await self._updates.poll(offset, min(max(limit, 1), 100), max(timeout, 0))
        self.timeline.delivered(batch)
        return batch

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise ApiError(400, "Bad Request: invalid webhook URL specified")
        secret = params.get("secret_token") or None
        if secret is not None and not (isinstance(secret, str) and _SECRET_RE.fullmatch(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if _as_bool(params.get("drop_pending_updates")):
            self._updates.clear()
        self._updates.set_allowed(_as_json(params.get("allowed_updates")))
        # plain http is accepted (Telegram demands https) so tests can use a local receiver
        self.webhook_url = url
        self.webhook_secret = secret if url else None
        if url:
            # a webhook supersedes long polling; wake pollers so they see the conflict
            self._updates.wake()
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        if _as_bool(params.get("drop_pending_updates")):
            self._updates.clear()
        self.webhook_url = ""
        self.webhook_secret = None
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url:
            info["max_connections"] = 40
            if self._updates.allowed is not None:
                info["allowed_updates"] = sorted(self._updates.allowed)
        return info

    # -- messages -----------------------------------------------------------------------------

    def _reply_target(
        self, chat_id: int, params: dict[str, Any], thread_id: int | None
    ) -> tuple[int | None, int | None]:
        """(reply_to_message_id, message_thread_id) of a new message."""
        reply_parameters = _as_json(params.get("reply_parameters"))
        allow_without = _as_bool(params.get("allow_sending_without_reply"))
        if isinstance(reply_parameters, dict):
            reply_to = _as_int(reply_parameters.get("message_id"))
            if reply_to is None:
                raise ApiError(400, "Bad Request: message to be replied not found")
            allow_without = _as_bool(reply_parameters.get("allow_sending_without_reply"))
        else:
            reply_to = self._optional_int(params, "reply_to_message_id")
        if reply_to is None:
            return None, thread_id
        chat = self.chat(chat_id)
        target = self.message_dict(chat, reply_to)
        if target is None:
            if allow_without:
                return None, thread_id
            raise ApiError(400, "Bad Request: message to be replied not found")
        if thread_id is None and target.get("is_topic_message"):
            thread_id = target.get("message_thread_id")  # replies stay in the topic
        return reply_to, thread_id

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        formatted = self._formatted(params)
        markup = self._reply_markup(params, inline_only=False)
        thread_id = self._optional_int(params, "message_thread_id")
        reply_to, thread_id = self._reply_target(chat_id, params, thread_id)
        self._admit(chat_id)
        chat = self.chat(chat_id)
        sent = SentMessage(
            message_id=chat.take_message_id(),
            chat_id=chat_id,
            text=formatted.text,
            entities=formatted.entities,
            parse_mode=params.get("parse_mode") or None,
            reply_to_message_id=reply_to,
            message_thread_id=thread_id,
            reply_markup=markup,
            history=[formatted.text],
            date=self.now_date(),
        )
        chat.bot_messages[sent.message_id] = sent
        self.messages_sent += 1
        self.timeline.shown("sendMessage", chat_id)
        return self.render(sent)

    def _editable(self, chat_id: int, message_id: int) -> SentMessage:
        chat = self._chats.get(chat_id)
        sent = chat.bot_messages.get(message_id) if chat is not None else None
        if sent is None or sent.deleted:
            if chat is not None and message_id in chat.user_messages:
                raise ApiError(400, "Bad Request: message can't be edited")
            raise ApiError(400, "Bad Request: message to edit not found")
        return sent

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        message_id = self._message_id(params)
        formatted = self._formatted(params)
        markup = self._reply_markup(params, inline_only=True)
        sent = self._editable(chat_id, message_id)
        # no reply_markup in an edit removes the keyboard, so it is part of "unchanged"
        if (
            sent.text == formatted.text
            and sent.entities == formatted.entities
            and sent.reply_markup == markup
        ):
            raise ApiError(400, NOT_MODIFIED)
        self._admit(chat_id)
        sent.text = formatted.text
        sent.entities = formatted.entities
        sent.parse_mode = params.get("parse_mode") or None
        sent.reply_markup = markup
        sent.history.append(formatted.text)
        sent.edits += 1
        sent.edit_date = self.now_date()
        self.messages_edited += 1
        self.timeline.shown("editMessageText", chat_id)
        return self.render(sent)

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        message_id = self._message_id(params)
        markup = self._reply_markup(params, inline_only=True)
        sent = self._editable(chat_id, message_id)
        if sent.reply_markup == markup:
            raise ApiError(400, NOT_MODIFIED)
        self._admit(chat_id)
        sent.reply_markup = markup
        sent.edits += 1
        sent.edit_date = self.now_date()
        self.messages_edited += 1
        self.timeline.shown("editMessageReplyMarkup", chat_id)
        return self.render(sent)

    def _delete_message(self, params: dict[str, Any]) -> bool:
        chat_id = self._chat_id(params)
        message_id = self._message_id(params)
        if not self.remove_message(chat_id, message_id):
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    def remove_message(self, chat_id: int, message_id: int) -> bool:
        chat = self._chats.get(chat_id)
        if chat is None:
            return False
        sent = chat.bot_messages.get(message_id)
        if sent is not None:
            if sent.deleted:
                return False
            sent.deleted = True
            return True
        return chat.user_messages.pop(message_id, None) is not None

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        action = params.get("action")
        if not isinstance(action, str) or action.lower() not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self.chat(self._chat_id(params))
        return True

    def _send_message_draft(self, params: dict[str, Any]) -> bool:
        chat_id = self._chat_id(params)
        if chat_id < 0:
            raise ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
        draft_id = self._optional_int(params, "draft_id")
        if not draft_id:
            raise ApiError(400, "Bad Request: RANDOM_ID_INVALID")
        formatted = self._formatted(params, allow_empty=True)
        thread_id = self._optional_int(params, "message_thread_id")
        if self.limits.count_drafts:
            self._admit(chat_id)
        draft = self.drafts.get((chat_id, draft_id))
        if draft is None:
            draft = Draft(chat_id, draft_id, thread_id, [], False)
            self.drafts[(chat_id, draft_id)] = draft
            self.chat(chat_id).drafts[draft_id] = draft
        draft.texts.append(formatted.text)
        draft.can_stop = _as_bool(params.get("can_stop"))
        draft.message_thread_id = thread_id
        self.draft_updates += 1
        self.timeline.shown("sendMessageDraft", chat_id, text=formatted.text)
        return True

    # -- chats and members --------------------------------------------------------------------

    def _user_id(self, params: dict[str, Any]) -> int:
        user_id = _as_int(params.get("user_id"))
        if user_id is None or user_id <= 0:
            raise ApiError(400, "Bad Request: invalid user_id specified")
        return user_id

    def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        return self.chat_member(chat_id, self._user_id(params))

    def _get_chat_administrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        chat = self.chat(self._chat_id(params))
        if chat.type == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        return [
            self.chat_member(chat.id, user_id)
            for user_id, status in chat.members.items()
            if status in ("creator", "administrator")
        ]

    def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.chat(self._chat_id(params))
        full = chat.as_dict()
        full.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return full

    # -- commands and callbacks ---------------------------------------------------------------

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = _as_json(params.get("scope"))
        if not isinstance(scope, dict):
            scope = {"type": "default"}
        language = params.get("language_code") or ""
        return json.dumps(scope, sort_keys=True), str(language)

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = _as_json(params.get("commands"))
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        stored: list[dict[str, str]] = []
        for item in commands:
            if not isinstance(item, dict):
                raise ApiError(400, "Bad Request: can't parse commands JSON object")
            command, description = item.get("command"), item.get("description")
            if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command.lstrip("/")):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            stored.append({"command": command.lstrip("/"), "description": description})
        key = self._commands_key(params)
        if stored:
            self.my_commands[key] = stored
        else:
            self.my_commands.pop(key, None)
        return True

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.my_commands.pop(self._commands_key(params), None)
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return list(self.my_commands.get(self._commands_key(params), []))

    def commands_for(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """Commands stored by setMyCommands for that scope and language ([] when none)."""
        key = self._commands_key({"scope": scope, "language_code": language_code})
        return list(self.my_commands.get(key, []))

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id not in self._open_callbacks:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._open_callbacks.discard(query_id)
        self.callback_answers[query_id] = dict(params)
        return True
