"""The last stop of an exception a handler did not handle: log it, keep the bot running.

Logged with the update's type and id, never its content. A history store outage gets
the user the same "try again in a minute" reply a question would have got. An answer
runs on after its handler returned, and logs its own failures
(`bot.turns.queue.TurnQueue`).
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, Update

from bot.history import HistoryUnavailable
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import language, reply

log = logging.getLogger(__name__)


def update_type(update: Update) -> str:
    """e.g. "message", "callback_query"; "unknown" for a type aiogram does not know."""
    for name in Update.model_fields:
        if name != "update_id" and getattr(update, name, None) is not None:
            return name
    return "unknown"


async def on_storage_unavailable(event: ErrorEvent, delivery: StreamDelivery) -> None:
    update = event.update
    log.warning(
        "history store unavailable while handling %s update %d: %s",
        update_type(update),
        update.update_id,
        event.exception,
    )
    message = update.message or update.edited_message
    query = update.callback_query
    if message is not None:
        await reply(message, delivery, text("storage_unavailable", language(message)))
        return
    with contextlib.suppress(TelegramAPIError):
        if query is not None:
            await query.answer(
                text("storage_unavailable", query.from_user.language_code), show_alert=True
            )


async def on_error(event: ErrorEvent) -> None:
    update = event.update
    log.error(
        "unexpected %s while handling %s update %d",
        type(event.exception).__name__,
        update_type(update),
        update.update_id,
        exc_info=event.exception,
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_storage_unavailable, ExceptionTypeFilter(HistoryUnavailable))
    router.errors.register(on_error)
    return router
