"""Updates for webhook tests: shaped like the fake Telegram's, but returned instead of
queued for getUpdates, so a test can POST them itself (or through `deliver_webhook`)."""

from __future__ import annotations

import socket
from typing import Any

from tests.fakes.telegram import FakeTelegram


def private_text_update(
    tg: FakeTelegram, user_id: int, text: str, *, first_name: str = "Alice"
) -> dict[str, Any]:
    """A private-chat text message from `user_id`, known to the fake (replies resolve)."""
    user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
    tg.remember_user(user)
    chat = tg.chat(user_id)
    chat.type, chat.first_name = "private", first_name
    message = {
        "message_id": chat.take_message_id(),
        "from": user,
        "chat": chat.as_dict(),
        "date": tg.now_date(),
        "text": text,
    }
    tg.remember_message(message)
    return {"message": message}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
