"""Webhook mode: an aiohttp server receiving Telegram's updates, any number of replicas.

Each request is checked against the secret token (``X-Telegram-Bot-Api-Secret-Token``;
401 otherwise) and its body validated as an update (400 otherwise, with nothing done),
then answered at once: the update is handled in the background, so Telegram never waits
for GLM. The webhook is registered after the server
listens, and left in place at shutdown: other replicas keep serving it.

With Redis leases (replicas), updates are taken in by `bot.cluster.ordered_webhook`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiogram.webhook.aiohttp_server import setup_application
from aiohttp import web

from bot.app import App
from bot.cluster.ordered_webhook import OrderedRequestHandler
from bot.config import ConfigError, Settings
from bot.config.ops import derived_webhook_secret
from bot.observability.http import ObservabilityServer, add_observability_routes
from bot.webhook.intake import UpdateRequestHandler

__all__ = [
    "WebhookServer",
    "check_webhook_settings",
    "run_webhook",
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
            UpdateRequestHandler(app.dispatcher, app.bot, secret_token=secret)
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


async def run_webhook(app: App) -> None:
    """Serve Telegram's webhook until SIGINT/SIGTERM, then release the app."""
    try:
        await serve_webhook(app)
    finally:
        await app.aclose()
