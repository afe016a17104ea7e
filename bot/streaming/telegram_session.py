"""The Bot API session: aiogram's aiohttp session, except that one bad update in a
getUpdates batch costs only itself.

aiogram decodes a getUpdates answer as a whole, so one update its models reject (a lone
surrogate in a key, a field of the wrong type) fails the whole batch; polling then fetches
the same batch again forever and logs it, content and all, at ERROR each time. Here a batch
that fails is decoded again update by update: a bad update is logged with its id and the
reason only, reported to `on_rejected`, and confirmed by the next getUpdates' offset; the
others are handled as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import ClientDecodeError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from pydantic import ValidationError

if TYPE_CHECKING:
    from aiogram import Bot

__all__ = ["UpdateCheckingSession"]

log = logging.getLogger(__name__)


class UpdateCheckingSession(AiohttpSession):
    """An `AiohttpSession` that skips, counts and logs (without content) the updates of a
    getUpdates answer that aiogram cannot read."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Called once per rejected update (e.g. a metrics counter's `inc`).
        self.on_rejected: Callable[[], object] | None = None
        # The offset that confirms the updates rejected so far.
        self._confirm_below: int | None = None

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        if isinstance(method, GetUpdates) and self._confirm_below is not None:
            # aiogram moves its offset past the updates it yields, so a rejected update at
            # the end of a batch would come back forever: move it past that one too.
            method.offset = max(method.offset or 0, self._confirm_below)
            self._confirm_below = None
        return await super().make_request(bot, method, timeout)

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError:
            if not isinstance(method, GetUpdates):
                raise
            batch = self._one_by_one(bot, content)
            return cast("Response[TelegramType]", batch)

    def _one_by_one(self, bot: Bot, content: str) -> Response[Any]:
        try:
            data = self.json_loads(content)
        except Exception:  # the decoder is configurable: any error, as in aiogram
            data = None
        items = data.get("result") if isinstance(data, dict) and data.get("ok") is True else None
        if not isinstance(items, list):
            raise _unreadable("not a list of updates")
        updates: list[Update] = []
        ids: list[int] = []
        for item in items:
            update_id = _update_id(item)
            if update_id is not None:
                ids.append(update_id)
            try:
                updates.append(Update.model_validate(item, context={"bot": bot}))
            except ValidationError as exc:
                self._reject(update_id, exc)
        if not ids:
            raise _unreadable("no update ids")  # nothing to confirm them by
        try:
            batch = Response[list[Update]].model_validate(
                {**data, "result": updates}, context={"bot": bot}
            )
        except ValidationError as exc:
            raise _unreadable(_reason(exc)) from None
        self._confirm_below = max(ids) + 1
        return batch

    def _reject(self, update_id: int | None, error: ValidationError) -> None:
        log.warning(
            "update %s rejected, unreadable: %s",
            update_id if update_id is not None else "(no id)",
            _reason(error),
        )
        if self.on_rejected is not None:
            self.on_rejected()


def _unreadable(reason: str) -> ClientDecodeError:
    """For a getUpdates answer that cannot be split into updates: aiogram retries it with
    backoff. Its content stays out of the error (aiogram logs it), as it may hold messages."""
    return ClientDecodeError("getUpdates answer unreadable", ValueError(reason), None)


def _update_id(item: object) -> int | None:
    update_id = item.get("update_id") if isinstance(item, dict) else None
    return update_id if isinstance(update_id, int) and not isinstance(update_id, bool) else None


def _reason(error: ValidationError) -> str:
    """The first problem's kind and place, e.g. "int_parsing at message.message_id": never
    the input, and only names of the Bot API's own shape (a key of the update may be text
    its sender chose)."""
    problems = error.errors(include_url=False, include_context=False, include_input=False)
    first = problems[0]
    place = ".".join(_loc_part(part) for part in first["loc"]) or "the update"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first['type']} at {place}{more}"


def _loc_part(part: int | str) -> str:
    if isinstance(part, int) or (part.isascii() and part.isidentifier() and len(part) <= 40):
        return str(part)
    return "?"
