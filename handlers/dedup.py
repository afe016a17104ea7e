"""Drops an update seen before (a Telegram redelivery, or one another replica took):
one outer middleware, before anything is dispatched (`bot.guards.dedup`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.types import TelegramObject, Update

from bot.guards.dedup import UpdateDedup

log = logging.getLogger(__name__)

__all__ = ["DedupMiddleware", "install_dedup"]

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def install_dedup(dispatcher: Dispatcher, dedup: UpdateDedup) -> None:
    dispatcher.update.outer_middleware(DedupMiddleware(dedup))


class DedupMiddleware(BaseMiddleware):
    """An outer middleware of the dispatcher's ``update`` observer."""

    def __init__(self, dedup: UpdateDedup) -> None:
        self._dedup = dedup

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update) and not await self._dedup.first_time(event.update_id):
            log.info("update %d dropped: already processed", event.update_id)
            return None
        return await handler(event, data)
