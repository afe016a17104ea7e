"""Where aiogram meets the metrics: Bot API calls (a session middleware) and updates
(a dispatcher outer middleware)."""

from __future__ import annotations

import logging
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
from aiogram.types.update import UpdateTypeLookupError

from bot.observability.metrics import Metrics

if TYPE_CHECKING:
    from aiogram.methods import Response, TelegramMethod

__all__ = ["TelegramCallMetrics", "UpdateMetrics"]

log = logging.getLogger(__name__)


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

    An update of a type this aiogram does not know (a self-hosted or newer Bot API can
    send one) is counted in ``glmbot_updates_unknown`` and dropped here, in webhook and
    polling mode alike: past this point aiogram warns with the whole update as raw text
    on stderr, outside the log and its redaction.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and not _known_type(event):
            self._metrics.updates_unknown.inc()
            log.info("update %d dropped: unknown type %s", event.update_id, _extra_type(event))
            return UNHANDLED
        kind = event.event_type if isinstance(event, Update) else "unknown"
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "handled"
            return result
        finally:
            self._metrics.updates.labels(kind, outcome).inc()


def _known_type(update: Update) -> bool:
    try:
        update.event_type  # noqa: B018 - a property that raises for unknown types
    except UpdateTypeLookupError:
        return False
    return True


def _extra_type(update: Update) -> str:
    """The unknown field's name, in ASCII whatever characters it holds."""
    names = [name for name, value in (update.model_extra or {}).items() if value is not None]
    return ascii(names[0][:40]) if names else "(none)"
