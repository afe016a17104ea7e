"""Where aiogram meets the metrics: Bot API calls (a session middleware) and updates
(a dispatcher outer middleware)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update

from bot.observability.metrics import Metrics

if TYPE_CHECKING:
    from aiogram.methods import Response, TelegramMethod

__all__ = ["TelegramCallMetrics", "UpdateMetrics"]


class TelegramCallMetrics(BaseRequestMiddleware):
    """Counts every Bot API request by method and result; install with
    ``bot.session.middleware(TelegramCallMetrics(metrics))``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        result = "error"
        try:
            response = await make_request(bot, method)
            result = "ok"
            return response
        except TelegramRetryAfter:
            result = "retry_after"
            self._metrics.telegram_429.labels(name).inc()
            raise
        except TelegramNetworkError:
            result = "network"
            raise
        finally:
            self._metrics.telegram_calls.labels(name, result).inc()


class UpdateMetrics(BaseMiddleware):
    """Counts updates by type and outcome; install as an outer middleware of
    ``dispatcher.update``.

    An answer runs on after its update's handler returned (`ConversationService.start`):
    its unexpected failures count in ``glmbot_answer_errors``, not as an update's error.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = _update_type(event)
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "handled"
            return result
        finally:
            self._metrics.updates.labels(kind, outcome).inc()


def _update_type(event: TelegramObject) -> str:
    if not isinstance(event, Update):
        return "unknown"
    try:
        return event.event_type
    except Exception:  # aiogram raises UpdateTypeLookupError for types newer than itself
        return "unknown"
