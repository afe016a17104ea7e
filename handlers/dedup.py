"""Drops an update seen before (a Telegram redelivery, or one another replica took).

The outer middleware claims each update (`bot.dedup`) and drops the repeats this process
has seen itself; whether another process claimed it first is settled before anything is
done about the update: by `ClaimMiddleware` for most handlers, and, for a message headed
for GLM, along with the turn's context read (`GuardMiddleware` leaves it to the turn).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.dispatcher.flags import get_flag
from aiogram.types import TelegramObject, Update

from bot.dedup import UpdateClaim, UpdateDedup
from handlers.flags import GLM

log = logging.getLogger(__name__)

__all__ = ["CLAIM", "first_delivery", "install_dedup"]

# The handler data key of the update's `UpdateClaim`.
CLAIM = "update_claim"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def install_dedup(dispatcher: Dispatcher, dedup: UpdateDedup) -> None:
    dispatcher.update.outer_middleware(DedupMiddleware(dedup))
    claims = ClaimMiddleware()
    for name, observer in dispatcher.observers.items():
        if name not in ("update", "error"):
            # a dispatcher's inner middlewares run for the handlers of every router
            observer.middleware(claims)


async def first_delivery(data: dict[str, Any]) -> bool:
    """Settle the update's claim: False when another delivery of it came first."""
    claim: UpdateClaim | None = data.get(CLAIM)
    if claim is None or await claim.settle():
        return True
    log.info("update %d dropped: already processed", claim.update_id)
    return False


class DedupMiddleware(BaseMiddleware):
    """An outer middleware of the dispatcher's ``update`` observer."""

    def __init__(self, dedup: UpdateDedup) -> None:
        self._dedup = dedup

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        claim = self._dedup.claim(event.update_id)
        if claim is None:
            log.info("update %d dropped: already processed", event.update_id)
            return None
        data[CLAIM] = claim
        return await handler(event, data)


class ClaimMiddleware(BaseMiddleware):
    """Settles the claim before the chosen handler runs, unless the handler sends the
    message to GLM (`handlers.flags.GLM`): that path settles it itself."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if get_flag(data, GLM) is None and not await first_delivery(data):
            return None
        return await handler(event, data)
