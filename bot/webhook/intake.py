"""The webhook's door: every request is authenticated, read and validated before it is
answered, and only a valid update is acknowledged (200) and handled in the background.
Anything else is a 401 or a 400, with nothing processed."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

__all__ = ["SECRET_HEADER", "RejectedUpdate", "UpdateRequestHandler", "parse_update"]

log = logging.getLogger(__name__)

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
