"""Hypothesis strategies for hostile Telegram updates, shaped as the Bot API sends them.

Everything a client can put in an update varies: update types, optional fields left
out, texts from empty to past 4,096 characters, entities pointing outside the text,
commands with junk arguments (also addressed to other bots), and unicode that breaks
naive code: lone surrogates, zero-width and direction marks, emoji ZWJ sequences.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

BOT_ID = 42
BOT_USERNAME = "glm_test_bot"
ANONYMOUS_ADMIN = 1087968824
# Enough chats that answers run side by side, few enough that turns queue up in some.
USERS = [*range(1001, 1013), ANONYMOUS_ADMIN]
GROUPS = [-100123, -100456, -100789, -100999]
CHANNEL = -1001000
DATE = 1_700_000_000

_update_ids = itertools.count(10_000)
_callback_ids = itertools.count(1)

ODD_PIECES = [
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\u200b\u200c\u200d\u2060\ufeff",  # zero-width
    "\u202e\u200f\u2067",  # right-to-left override and marks
    "👨‍👩‍👧‍👦",  # emoji ZWJ sequence (11 UTF-16 units)
    "🏳️‍🌈",
    "e\u0301\u0302\u0303",  # stacked combining marks
    "\x00\x07\x1b[31m",  # control characters, an ANSI escape
    "مرحبا",
    "你好，世界",
    "\n\n\t ",
    "{curly} %s %(name)s",  # format strings must stay data
    "<b>not html</b> *not markdown_ `x`",
    "@glm_test_bot",
    "@other_bot",
]
COMMANDS = [
    "/start",
    "/help",
    "/reset",
    "/stop",
    "/usage",
    "/ask",
    "/listen",
    "/persona",
    "/persona@otherbot",
    "/persona@glm_test_bot",
    "/ask@glm_test_bot",
    "/listen@other_bot",
    "/reset@glm_test_bot",
]
COMMAND_ARGS = ["", "on", "off", "list", "reset", "use", "use teacher", "use nosuch", "ON", "maybe"]

odd_text = st.lists(st.one_of(st.sampled_from(ODD_PIECES), st.text(max_size=20)), max_size=8).map(
    "".join
)
huge_text = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["a", "中", "👨‍👩‍👧", "\u200b", "ab "]),
    st.integers(600, 4200),
)
command_text = st.builds(
    lambda command, args, junk: " ".join(part for part in (command, args, junk) if part),
    st.sampled_from(COMMANDS),
    st.sampled_from(COMMAND_ARGS),
    st.one_of(st.just(""), odd_text, huge_text),
)
texts = st.one_of(
    st.just(""),
    odd_text,
    command_text,
    huge_text,
    st.builds(lambda t: f"@{BOT_USERNAME} {t}", odd_text),
)


def user(user_id: int, *, language: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "User"}
    if user_id == ANONYMOUS_ADMIN:
        data.update(is_bot=True, first_name="Group", username="GroupAnonymousBot")
    if language is not None:
        data["language_code"] = language
    return data


@st.composite
def users(draw: st.DrawFn) -> dict[str, Any]:
    data = user(
        draw(st.sampled_from(USERS)), language=draw(st.sampled_from([None, "en", "zh-hans", "xx"]))
    )
    if draw(st.booleans()):
        data["first_name"] = draw(odd_text) or "x"
    if draw(st.booleans()):
        data["last_name"] = draw(odd_text)
    return data


@st.composite
def chats(draw: st.DrawFn, sender: dict[str, Any]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["private", "supergroup", "group", "supergroup-forum"]))
    if kind == "private":
        return {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    chat: dict[str, Any] = {
        "id": draw(st.sampled_from(GROUPS)),
        "type": "group" if kind == "group" else "supergroup",
        "title": draw(odd_text) or "group",
    }
    if kind == "supergroup-forum":
        chat["is_forum"] = True
    return chat


@st.composite
def entities(draw: st.DrawFn, text: str) -> list[dict[str, Any]]:
    size = len(text.encode("utf-16-le", "surrogatepass")) // 2
    found = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(
            st.sampled_from(["mention", "text_mention", "bot_command", "bold", "url", "text_link"])
        )
        offset = draw(st.one_of(st.integers(0, size + 2), st.integers(-3, 10_000)))
        length = draw(st.one_of(st.integers(0, size + 2), st.integers(-3, 10_000)))
        entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
        if kind == "text_mention":
            entity["user"] = draw(st.sampled_from([user(BOT_ID) | {"is_bot": True}, user(1001)]))
        elif kind == "text_link":
            entity["url"] = "https://example.com"
        found.append(entity)
    return found


@st.composite
def messages(draw: st.DrawFn, *, channel: bool = False) -> dict[str, Any]:
    sender = draw(users())
    message: dict[str, Any] = {"message_id": draw(st.integers(1, 50)), "date": DATE}
    if channel:
        message["chat"] = {"id": CHANNEL, "type": "channel", "title": "news"}
        message["sender_chat"] = message["chat"]
    else:
        message["chat"] = draw(chats(sender))
        if draw(st.integers(0, 9)) > 0:  # from is missing in a few odd service messages
            message["from"] = sender
        if message["chat"]["type"] != "private" and draw(st.integers(0, 5)) == 0:
            message["sender_chat"] = draw(
                st.sampled_from([message["chat"], {"id": CHANNEL, "type": "channel"}])
            )
    content = draw(st.sampled_from(["text", "text", "text", "sticker", "none", "new_members"]))
    if content == "text":
        text = draw(texts)
        message["text"] = text
        if draw(st.booleans()):
            message["entities"] = draw(entities(text))
    elif content == "sticker":
        message["sticker"] = {
            "file_id": "s",
            "file_unique_id": "u",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    elif content == "new_members":
        message["new_chat_members"] = [user(BOT_ID) | {"is_bot": True}]
    if draw(st.integers(0, 3)) == 0:
        message["message_thread_id"] = draw(st.integers(1, 5))
        message["is_topic_message"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        replied = {
            "message_id": draw(st.integers(1, 50)),
            "date": DATE,
            "chat": message["chat"],
            "from": draw(st.sampled_from([user(BOT_ID) | {"is_bot": True}, sender])),
            "text": "earlier",
        }
        if draw(st.booleans()):
            replied["forum_topic_created"] = {"name": "topic", "icon_color": 7322096}
        message["reply_to_message"] = replied
    return message


def _member(status: str, member: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "user": member}
    if status == "creator":
        data["is_anonymous"] = False
    elif status == "kicked":
        data["until_date"] = 0
    return data


@st.composite
def member_updates(draw: st.DrawFn) -> dict[str, Any]:
    sender = draw(users())
    statuses = st.sampled_from(["member", "left", "kicked", "creator"])
    subject = draw(st.sampled_from([user(BOT_ID) | {"is_bot": True}, sender]))
    return {
        "chat": draw(chats(sender)),
        "from": sender,
        "date": DATE,
        "old_chat_member": _member(draw(statuses), subject),
        "new_chat_member": _member(draw(statuses), subject),
    }


@st.composite
def callback_queries(draw: st.DrawFn) -> dict[str, Any]:
    query: dict[str, Any] = {
        "id": str(next(_callback_ids)),
        "from": draw(users()),
        "chat_instance": "1",
        "data": draw(st.sampled_from(["stop", "junk", "", "x" * 64])),
    }
    shape = draw(st.sampled_from(["message", "inaccessible", "none"]))
    if shape == "message":
        query["message"] = draw(messages())
    elif shape == "inaccessible":
        query["message"] = {
            "chat": {"id": GROUPS[0], "type": "supergroup"},
            "message_id": 9,
            "date": 0,
        }
    return query


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "message",
                "message",
                "message",
                "edited_message",
                "channel_post",
                "callback_query",
                "my_chat_member",
                "chat_member",
                "stopped_message_generation",
            ]
        )
    )
    update: dict[str, Any] = {"update_id": next(_update_ids)}
    if kind in ("message", "edited_message"):
        update[kind] = draw(messages())
        if kind == "edited_message":
            update[kind]["edit_date"] = DATE + 1
    elif kind == "channel_post":
        update[kind] = draw(messages(channel=True))
    elif kind == "callback_query":
        update[kind] = draw(callback_queries())
    elif kind in ("my_chat_member", "chat_member"):
        update[kind] = draw(member_updates())
    else:
        stop: dict[str, Any] = {
            "chat": {"id": draw(st.sampled_from(USERS[:3])), "type": "private"},
            "draft_id": draw(st.integers(1, 2**31)),
        }
        if draw(st.booleans()):
            stop["message_thread_id"] = draw(st.integers(1, 5))
        update[kind] = stop
    return update
