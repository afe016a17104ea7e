"""The bot in webhook mode for tests, and updates shaped like the fake Telegram's but
returned instead of queued for getUpdates, so a test can POST them itself (or through
`deliver_webhook`)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import App, create_app
from bot.webhook.server import WebhookServer, webhook_secret
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.harness import make_settings

PATH = "/telegram/webhook"


@dataclass
class WebhookBot:
    tg: FakeTelegram
    glm: FakeGLM
    app: App
    url: str
    secret: str


@asynccontextmanager
async def webhook_bot(
    redis_url: str,
    key_prefix: str,
    *,
    reply: Reply | None = None,
    metrics_port: int | None = 0,
    **overrides: Any,
) -> AsyncIterator[WebhookBot]:
    """The bot in webhook mode; ``metrics_port=None`` serves metrics on the webhook's port."""
    port = free_port()
    async with (
        FakeTelegram() as tg,
        FakeGLM(default=reply or Reply(text="Hello from GLM!")) as glm,
    ):
        settings = make_settings(
            tg,
            glm,
            redis_url,
            key_prefix,
            telegram={"mode": "webhook"},
            webhook={"public_url": f"http://127.0.0.1:{port}", "host": "127.0.0.1", "port": port},
            metrics={"port": port if metrics_port is None else metrics_port},
            **overrides,
        )
        app = create_app(settings)
        server = WebhookServer(app)
        try:
            await server.start()
            yield WebhookBot(tg, glm, app, settings.webhook.url, webhook_secret(settings))
        finally:
            await server.stop()
            await app.aclose()


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
