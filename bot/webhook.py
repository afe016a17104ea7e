"""Webhook mode: an aiohttp server receiving Telegram's updates, any number of replicas.

Each request is checked against the secret token (``X-Telegram-Bot-Api-Secret-Token``;
aiogram answers 401 otherwise) and answered at once: the update is handled in the
background, so Telegram never waits for GLM. The webhook is registered after the server
listens, and left in place at shutdown: other replicas keep serving it.

With Redis leases (replicas), a text message takes its place in its conversation's queue
before the webhook answers: turns then run in the order Telegram delivered them, however
long each replica takes to get from the update to the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.config import ConfigError, Settings
from bot.config.ops import derived_webhook_secret
from bot.keys import ConversationKey
from bot.leases import RedisLeases
from bot.observability.http import ObservabilityServer, add_observability_routes

if TYPE_CHECKING:
    from bot.app import App

__all__ = [
    "OrderedRequestHandler",
    "WebhookServer",
    "check_webhook_settings",
    "conversation_of",
    "serve_webhook",
    "webhook_secret",
]

log = logging.getLogger(__name__)


def webhook_secret(settings: Settings) -> str:
    """TELEGRAM_WEBHOOK_SECRET, else one derived from the bot token (replicas agree)."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    return derived_webhook_secret(settings.telegram_bot_token.get_secret_value())


def check_webhook_settings(settings: Settings) -> None:
    """Raise ConfigError (one line) when webhook mode cannot start."""
    if not settings.webhook.public_url:
        raise ConfigError(
            "WEBHOOK__PUBLIC_URL: required in webhook mode (the https URL Telegram posts to)"
        )
    # Telegram posts to https only; a self-hosted Bot API server (TELEGRAM_API_BASE)
    # also posts to http
    schemes = ("https://", "http://") if settings.telegram_api_base else ("https://",)
    if not settings.webhook.public_url.startswith(schemes):
        raise ConfigError("WEBHOOK__PUBLIC_URL: should start with https://")


SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def conversation_of(update: Any) -> ConversationKey | None:
    """The conversation a text message would be answered in (as `handlers.context`
    derives it), or None for updates that never start an answer."""
    message = update.get("message") if isinstance(update, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    chat = message.get("chat")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, int):
        return None
    thread = message.get("message_thread_id") if message.get("is_topic_message") else None
    return ConversationKey(chat_id, thread if isinstance(thread, int) else None)


class OrderedRequestHandler(SimpleRequestHandler):
    """aiogram's handler, plus a place in the conversation's queue taken on arrival.

    The reservation travels with the background task through a context variable (a task
    copies the context it was created in) and is given up when the update's handling
    ends without a turn having claimed it (a turn claims it as it is started, before
    its own task runs: `bot.leases.RedisLeases.place`).
    """

    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str, leases: RedisLeases
    ) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret_token)
        self._leases = leases

    async def handle(self, request: web.Request) -> web.Response:
        key = None
        if self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            with contextlib.suppress(ValueError):  # malformed: aiogram's to answer
                key = conversation_of(await request.json())
        if key is None:
            return await super().handle(request)
        reservation = await self._leases.reserve(key)
        try:
            with self._leases.reserved(reservation):
                response = await super().handle(request)
        except BaseException:
            await self._leases.release_unclaimed(reservation)
            raise
        if response.status != 200:
            await self._leases.release_unclaimed(reservation)
        return response

    async def _background_feed_update(self, bot: Bot, update: dict[str, Any]) -> None:
        # aiogram's background task body; wrapped to give an unclaimed place up at its end
        reservation = self._leases.current()
        try:
            await super()._background_feed_update(bot, update)
        finally:
            if reservation is not None:
                await self._leases.release_unclaimed(reservation)


class WebhookServer:
    """The webhook endpoint (and /metrics, /healthz, /readyz when they share its port)."""

    def __init__(self, app: App) -> None:
        self._app = app
        settings = app.settings
        self.web_app = web.Application()
        # Registered before the request handler: at shutdown the answers are drained
        # first, and only then does the handler close the bot's session.
        setup_application(self.web_app, app.dispatcher, bot=app.bot)
        secret = webhook_secret(settings)
        handler = (
            SimpleRequestHandler(
                app.dispatcher, app.bot, secret_token=secret, handle_in_background=True
            )
            if app.leases is None
            else OrderedRequestHandler(
                app.dispatcher, app.bot, secret_token=secret, leases=app.leases
            )
        )
        handler.register(self.web_app, path=settings.webhook.path)
        metrics_port = settings.metrics.port
        self._metrics_server: ObservabilityServer | None = None
        if metrics_port == settings.webhook.port:
            add_observability_routes(self.web_app, app.metrics, app.readiness)
        elif metrics_port:
            self._metrics_server = ObservabilityServer(app.metrics, app.readiness)
        self._loop_lag = app.metrics.loop_lag_monitor()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Listen, then register the webhook with Telegram."""
        settings = self._app.settings
        runner = web.AppRunner(self.web_app, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, settings.webhook.host, settings.webhook.port)
        await site.start()
        self.port = int(runner.addresses[0][1])
        if self._metrics_server is not None:
            await self._metrics_server.start(settings.metrics.host, settings.metrics.port)
        await self._loop_lag.start()
        dispatcher = self._app.dispatcher
        await self._app.bot.set_webhook(
            url=settings.webhook.url,
            secret_token=webhook_secret(settings),
            allowed_updates=dispatcher.resolve_used_update_types(),
            drop_pending_updates=False,
        )
        log.info(
            "webhook registered at %s, listening on %s:%s",
            settings.webhook.url,
            settings.webhook.host,
            self.port,
        )

    async def stop(self) -> None:
        """Stop accepting updates and drain the running answers (the dispatcher's shutdown)."""
        await self._loop_lag.stop()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def serve_webhook(app: App, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    server = WebhookServer(app)
    try:
        await server.start()
        await stop.wait()
        log.info("stopping: no new updates; finishing running answers")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await server.stop()
