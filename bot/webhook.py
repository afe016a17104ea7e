"""Webhook mode: an aiohttp server receiving Telegram's updates, any number of replicas.

Each request is checked against the secret token (``X-Telegram-Bot-Api-Secret-Token``;
401 otherwise) and its body validated as an update (400 otherwise, with nothing done),
then answered at once: the update is handled in the background, so Telegram never waits
for GLM. The webhook is registered after the server
listens, and left in place at shutdown: other replicas keep serving it.

With Redis leases (replicas), a text message takes its place in its conversation's queue
before the webhook answers: turns then run in the order Telegram delivered them, however
long each replica takes to get from the update to the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from pydantic import ValidationError

from bot.cluster.leases import RedisLeases
from bot.config import ConfigError, Settings
from bot.config.ops import derived_webhook_secret
from bot.keys import ConversationKey
from bot.observability.http import ObservabilityServer, add_observability_routes

if TYPE_CHECKING:
    from bot.app import App

__all__ = [
    "OrderedRequestHandler",
    "RejectedUpdate",
    "UpdateRequestHandler",
    "WebhookServer",
    "check_webhook_settings",
    "conversation_of",
    "parse_update",
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
    if not settings.webhook.public_url.startswith(("https://", "http://")):
        raise ConfigError("WEBHOOK__PUBLIC_URL: should start with https://")


SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class RejectedUpdate(Exception):
    """A request body that is not a Telegram update. The message names why, and never
    quotes the body: it may hold a user's message text."""


def parse_update(body: bytes, bot: Bot) -> Update:
    """The update in a webhook request's body, or RejectedUpdate."""
    try:
        data = json.loads(body)
    except RecursionError:  # nested deeper than the C decoder's recursion limit
        raise RejectedUpdate("JSON nested too deep") from None
    except json.JSONDecodeError as exc:
        raise RejectedUpdate(f"malformed JSON ({exc.msg} at {exc.pos})") from None
    except ValueError:  # UnicodeDecodeError
        raise RejectedUpdate("not UTF-8 text") from None
    if not isinstance(data, dict):
        raise RejectedUpdate(f"a JSON {type(data).__name__}, not an object")
    update_id = data.get("update_id")
    if type(update_id) is not int:
        raise RejectedUpdate("no integer update_id")
    try:
        return Update.model_validate(data, context={"bot": bot})
    except ValidationError as exc:
        # the error's text quotes the input; the top-level fields it failed on do not
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        raise RejectedUpdate(
            f"update {update_id}: not a valid update (fields: {', '.join(fields) or '-'})"
        ) from None


def conversation_of(update: Update) -> ConversationKey | None:
    """The conversation a text message would be answered in (as `handlers.context`
    derives it), or None for updates that never start an answer."""
    message = update.message
    if message is None or message.text is None:
        return None
    thread = message.message_thread_id if message.is_topic_message else None
    return ConversationKey(message.chat.id, thread)


class UpdateRequestHandler(SimpleRequestHandler):
    """aiogram's handler, stricter at the door: every request is authenticated, read and
    validated before it is answered, and only a valid update is acknowledged (200) and
    handled in the background. Anything else is a 401 or a 400, with nothing processed.
    """

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret_token)
        self._secret = secret_token.encode()

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        # Compared as bytes: `secrets.compare_digest` on str raises TypeError for non-ASCII
        # text. aiohttp decodes header bytes it cannot read as lone surrogates, which
        # "surrogatepass" encodes rather than fails on.
        given = telegram_secret_token.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self._secret)

    async def handle(self, request: web.Request) -> web.Response:
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            return web.Response(text="Unauthorized", status=401)
        try:
            update = parse_update(await request.read(), self.bot)
        except RejectedUpdate as exc:
            log.warning("webhook: request refused: %s", exc)
            return web.Response(text="Bad Request: not a Telegram update", status=400)
        await self.accept(update)
        return web.json_response({})

    async def accept(self, update: Update) -> None:
        """Start handling `update` in a task of its own (kept until it ends)."""
        task = asyncio.create_task(self.feed(update))
        self._background_feed_update_tasks.add(task)
        task.add_done_callback(self._background_feed_update_tasks.discard)

    async def feed(self, update: Update) -> None:
        """The update through the dispatcher; a handler's failure is logged with its id."""
        try:
            result = await self.dispatcher.feed_update(self.bot, update, **self.data)
        except Exception:
            log.exception("update %d: handling failed", update.update_id)
            return
        if isinstance(result, TelegramMethod):
            await self.dispatcher.silent_call_request(bot=self.bot, result=result)


class OrderedRequestHandler(UpdateRequestHandler):
    """Plus a place in the conversation's queue, taken on arrival.

    The reservation travels with the background task through a context variable (a task
    copies the context it was created in) and is given up when the update's handling
    ends without a turn having claimed it (a turn claims it as it is started, before
    its own task runs: `bot.cluster.leases.RedisLeases.place`).
    """

    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str, leases: RedisLeases
    ) -> None:
        super().__init__(dispatcher, bot, secret_token=secret_token)
        self._leases = leases

    async def accept(self, update: Update) -> None:
        key = conversation_of(update)
        if key is None:
            await super().accept(update)
            return
        reservation = await self._leases.reserve(key)
        try:
            with self._leases.reserved(reservation):
                await super().accept(update)
        except BaseException:
            await self._leases.release_unclaimed(reservation)
            raise

    async def feed(self, update: Update) -> None:
        reservation = self._leases.current()
        try:
            await super().feed(update)
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
